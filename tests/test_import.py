"""`tagkit import` end to end: bad input of every kind goes through with clear problems, nothing is lost,
and nothing is embedded twice."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tagkit.cli import main
from tagkit.config import Mapping
from tagkit.exitcodes import ExitCode
from tagkit.image import ImageEmbedder
from tagkit.ingest import import_products
from tagkit.store import Store


def _photo(seed: int, size: tuple[int, int] = (60, 80)) -> Image.Image:
    """A small, real-looking picture: smooth colour gradients plus noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = rng.uniform(40, 215, 3)
    pixels = np.stack([base[c] + 30 * np.sin(x / (5 + c) + seed) + 20 * np.cos(y / (7 + c)) for c in range(3)], -1)
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    _photo(seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def bad_catalogue(tmp_path: Path) -> Path:
    """A products CSV whose rows hit every bad-input case, next to its images."""
    images = tmp_path / "images"
    images.mkdir()
    good = _jpeg(1)
    (images / "good.jpg").write_bytes(good)
    (images / "copy.jpg").write_bytes(good)  # the same picture under another product
    corrupt = bytearray(_jpeg(2))
    corrupt[20:400] = np.random.default_rng(2).integers(0, 256, 380, dtype=np.uint8).tobytes()  # damaged header
    (images / "corrupt.jpg").write_bytes(bytes(corrupt))
    (images / "truncated.jpg").write_bytes(_jpeg(3)[:700])
    (images / "empty.jpg").write_bytes(b"")
    (images / "text.jpg").write_bytes(b"this is not an image, only text with a .jpg name\n" * 5)
    rgba = _photo(4).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))  # fully transparent: must come out white
    rgba.save(images / "alpha.png")
    _photo(5).convert("CMYK").save(images / "cmyk.jpg", "JPEG")
    frames = [_photo(6 + i).convert("P") for i in range(3)]
    frames[0].save(images / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.new("1", (20000, 20000)).save(images / "huge.png")  # 400 Mpx, a few KB on disk
    rows = [
        ["id", "title", "description", "image", "category", "tags"],
        ["p1", "کیف پول چرم مردانه A54", "<p>چرم <b>طبیعی</b></p>", "images/good.jpg", "مد > کیف", "رنگ: قهوه‌ای"],
        ["p2", "Corrupt photo", "", "images/corrupt.jpg", "A > B", ""],
        ["p3", "Truncated photo", "", "images/truncated.jpg", "A > B", ""],
        ["p4", "Empty file", "", "images/empty.jpg", "A > B", ""],
        ["p5", "Missing file", "", "images/missing.jpg", "A > B", ""],
        ["p6", "PNG with alpha", "", "images/alpha.png", "A > C", "color: White"],
        ["p7", "CMYK", "", "images/cmyk.jpg", "A > C", ""],
        ["p8", "GIF", "", "images/anim.gif", "A > C", ""],
        ["p9", "Huge", "", "images/huge.png", "A > C", ""],
        ["p10", "Text with a jpg name", "", "images/text.jpg", "A > C", ""],
        ["p11", "", "", "images/copy.jpg", "A > D", ""],
        ["p12", "extra column", "", "images/good.jpg", "A > D", "", "surprise"],
        ["p13", "missing columns"],
        ["p1", "کیف پول چرم مردانه A54 (updated)", "", "images/good.jpg", "مد > کیف", "رنگ: مشکی"],
    ]
    with (tmp_path / "products.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return tmp_path


def _invoke(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), "import", *args], catch_exceptions=False)


def test_every_bad_input_is_reported_and_the_rest_goes_through(bad_catalogue: Path, tmp_path: Path):
    db = tmp_path / "tagkit.db"
    result = _invoke(db, str(bad_catalogue / "products.csv"))
    assert result.exit_code == ExitCode.PARTIAL, result.output
    err = result.stderr
    source = str(bad_catalogue / "products.csv")

    def problem_line(row: int, field: str) -> str:
        lines = [line for line in err.splitlines() if line.startswith(f"{source}, row {row}, field {field!r}")]
        assert lines, f"no problem reported for row {row}, field {field}:\n{err}"
        return lines[0]

    assert "truncated" in problem_line(4, "image")
    assert "empty file" in problem_line(5, "image")
    assert "not found" in problem_line(6, "image")
    assert "too large" in problem_line(10, "image")
    assert "not an image" in problem_line(11, "image")
    assert "corrupt JPEG" in problem_line(3, "image")
    assert "replaces row 2" in problem_line(15, "id")
    assert f"{source}, row 13: expected 6 fields (one per column), found 7" in err
    assert f"{source}, row 14: expected 6 fields (one per column), found 2" in err
    assert f"note: {source}, row 12, field 'title': empty title" in err

    with Store(db) as store:
        ids = {p.id for p in store.iter_products()}
        assert ids == {f"p{i}" for i in range(1, 14) if i != 12}, "only the row with too many fields is skipped"
        updated = store.product("p1")
        assert updated.title.endswith("(updated)") and [str(t) for t in updated.tags] == ["رنگ: مشکی"]
        assert store.product("p13").title == "missing columns"
        model = ImageEmbedder().model_id
        embedded = {p.id for p in store.iter_products() if p.image_hash
                    and p.image_hash in store.get_features(model, [p.image_hash])}
        assert embedded == {"p1", "p6", "p7", "p8", "p11"}
        problems = {(r["row"], r["field"]) for r in store.db.table("problems").rows_where("info = 0")}
        assert {(3, "image"), (4, "image"), (5, "image"), (6, "image"), (10, "image"), (11, "image")} <= problems
        run = next(store.db.table("runs").rows)
        assert run["status"] == "partial"


def test_alpha_png_is_composited_on_white_before_embedding(bad_catalogue: Path, tmp_path: Path):
    """The fully transparent PNG embeds exactly like a plain white picture."""
    white = tmp_path / "white.png"
    Image.new("RGB", (60, 80), (255, 255, 255)).save(white)
    embedder = ImageEmbedder()
    (_, alpha), (_, plain) = embedder.embed([("a", bad_catalogue / "images" / "alpha.png"), ("w", white)])
    np.testing.assert_allclose(alpha, plain, atol=1e-6)


def test_second_import_embeds_nothing(bad_catalogue: Path, tmp_path: Path):
    db = tmp_path / "tagkit.db"
    _invoke(db, str(bad_catalogue / "products.csv"))
    again = _invoke(db, str(bad_catalogue / "products.csv"), "--json")
    report = json.loads(again.stdout)
    assert report["images_embedded"] == 0
    assert report["images_cached"] == 6  # rows of p1 (twice), p6, p7, p8, p11 (p11 is p1's picture)
    assert (report["images_unreadable"], report["images_missing"]) == (5, 1), "only images/missing.jpg is missing"
    assert report["products_read"] == 13  # p1 twice (the later row wins)
    assert report["products_stored"] == 0 and report["products_unchanged"] == 12, "nothing changed: nothing written"


def test_an_id_a_spreadsheet_dropped_the_leading_zeros_of_is_said(tmp_path: Path):
    """The catalogue opened in Excel and saved: `00123` became `123`, a new product with the stored one's photo and
    other labels, so training saw one photo labelled twice; nothing was said."""
    (tmp_path / "a.jpg").write_bytes(_jpeg(11))
    (tmp_path / "b.jpg").write_bytes(_jpeg(12))
    (tmp_path / "first.csv").write_text("id,title,image,category\n00123,Red mug,a.jpg,Home > Mugs\n"
                                        "0456,Pan,b.jpg,Home > Pans\n", "utf-8")
    (tmp_path / "saved.csv").write_text("id,title,image,category\n123,Red mug,a.jpg,Home > Cups\n"
                                        "456,Pan,a.jpg,Home > Pans\n", "utf-8")
    db = tmp_path / "tagkit.db"
    assert _invoke(db, str(tmp_path / "first.csv"), "--no-images").exit_code == ExitCode.OK
    result = _invoke(db, str(tmp_path / "saved.csv"), "--no-images")
    assert result.exit_code == ExitCode.OK, result.stderr
    notes = [line for line in result.stderr.splitlines() if "leading zeros" in line]
    assert len(notes) == 1 and "row 2, field 'id': id '123' is the stored product '00123'" in notes[0], notes
    assert "Text" in notes[0]  # 456 has another product's photo than 0456: not said


def test_an_id_with_the_leading_zeros_a_stored_one_lost_is_said(tmp_path: Path):
    """The other order: the file Excel saved (`123`) was imported first, the right one (`00123`) later; the same
    product stored twice, with its photo, was not said."""
    (tmp_path / "a.jpg").write_bytes(_jpeg(11))
    (tmp_path / "b.jpg").write_bytes(_jpeg(12))
    (tmp_path / "saved.csv").write_text("id,title,image,category\n123,Red mug,a.jpg,Home > Mugs\n"
                                        "456,Pan,a.jpg,Home > Pans\n0,Lid,b.jpg,Home > Lids\n", "utf-8")
    (tmp_path / "right.csv").write_text("id,title,image,category\n00123,Red mug,a.jpg,Home > Mugs\n"
                                        "0456,Pan,b.jpg,Home > Pans\n000,Lid,b.jpg,Home > Lids\n", "utf-8")
    db = tmp_path / "tagkit.db"
    assert _invoke(db, str(tmp_path / "saved.csv"), "--no-images").exit_code == ExitCode.OK
    result = _invoke(db, str(tmp_path / "right.csv"), "--no-images")
    assert result.exit_code == ExitCode.OK, result.stderr
    notes = [line for line in result.stderr.splitlines() if "leading zeros" in line]
    assert len(notes) == 1, notes  # 0456 has another photo than 456; `000` has no digits but zeros
    assert "row 2, field 'id': id '00123' is the stored product '123' with" in notes[0], notes
    assert "likely right" in notes[0] and "delete the product '123'" in notes[0]


def test_an_empty_image_file_is_unreadable_not_missing(tmp_path: Path):
    """A zero-byte file is there: counted `images_unreadable`, its problem says it is empty; only a file that is
    not there is `images_missing`."""
    (tmp_path / "a.jpg").write_bytes(_jpeg(10))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "products.csv").write_text("id,title,image\na,Red shirt,a.jpg\nb,Blue shirt,empty.jpg\n"
                                           "c,Green shirt,gone.jpg\n", "utf-8")
    for extra in ((), ("--no-images",)):
        result = _invoke(tmp_path / f"tagkit{len(extra)}.db", str(tmp_path / "products.csv"), "--json", *extra)
        assert result.exit_code == ExitCode.PARTIAL, result.output
        report = json.loads(result.stdout)
        assert (report["images"], report["images_unreadable"], report["images_missing"]) == (3, 1, 1), report
        messages = {problem["row"]: problem["message"] for problem in report["problems"]}
        assert messages[3].startswith("empty file (0 bytes)") and messages[4].startswith("file not found")


def test_a_photo_in_icloud_not_downloaded_is_said_to_be_so_not_just_not_found(tmp_path: Path):
    """A products row naming a photo that iCloud Drive keeps in the cloud (only `.IMG_4.jpg.icloud` beside it) was a
    plain "file not found"."""
    (tmp_path / "IMG_1.jpg").write_bytes(_jpeg(10))
    (tmp_path / ".IMG_4.jpg.icloud").write_bytes(b"bplist00")
    (tmp_path / "products.csv").write_text("id,title,image\na,Bag,IMG_1.jpg\nb,Hat,IMG_4.jpg\nc,Cap,IMG_6.jpg\n",
                                           "utf-8")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "products.csv"), "--json")
    assert result.exit_code == ExitCode.PARTIAL, result.output
    report = json.loads(result.stdout)
    assert report["images_missing"] == 2, report
    messages = {problem["row"]: problem["message"] for problem in report["problems"]}
    assert messages[3] == ("the photo is in iCloud, not downloaded to this Mac: open the folder in Finder and choose "
                           f"Download Now, or turn off Optimise Mac Storage ({tmp_path / 'IMG_4.jpg'}); product kept "
                           "without image")
    assert messages[4].startswith("file not found")


def test_a_stored_product_keeps_its_image_when_the_file_is_not_found_now(tmp_path: Path):
    """A database copied to a laptop without the photos (or a photo folder moved): importing or predicting the
    products file again kept the products but cleared their stored images, so the next `train` learnt a titles-only
    model without a word. The stored image (and its cached features) is kept, and a note says so."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(_jpeg(10))
    (tmp_path / "products.csv").write_text("id,title,image\na,Red shirt,images/a.jpg\nb,Blue shirt,images/b.jpg\n",
                                           "utf-8")
    db = tmp_path / "t.db"
    _invoke(db, str(tmp_path / "products.csv"))
    with Store(db) as store:
        stored = store.product("a")
    assert stored is not None and stored.image_hash
    (tmp_path / "images").rename(tmp_path / "moved")
    result = _invoke(db, str(tmp_path / "products.csv"), "--json")
    report = json.loads(result.stdout)
    messages = {problem["row"]: problem for problem in report["problems"]}
    assert messages[2]["info"] and messages[2]["message"] == (
        f"file not found ({tmp_path / 'images' / 'a.jpg'}); the image stored before ({stored.image}) is kept")
    assert not messages[3]["info"] and messages[3]["message"].endswith("product kept without image")
    with Store(db) as store:
        assert store.product("a").image_hash == stored.image_hash and store.product("a").image == stored.image


def test_clean_input_exits_zero_and_reports_on_stdout(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(_jpeg(10))
    (tmp_path / "b.jpg").write_bytes(_jpeg(11))
    (tmp_path / "products.csv").write_text("id,title,image\na,Red shirt,a.jpg\nb,Blue shirt,b.jpg\n", "utf-8")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "products.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "embedded now    2" in result.stdout
    assert result.stderr == ""


def test_non_utf8_file_is_a_clear_problem_and_earlier_rows_are_kept(tmp_path: Path):
    text = "id,title\n1,Plain ASCII title\n2,كيف پول چرم\n3,Another\n"
    (tmp_path / "cp1256.csv").write_bytes(text.encode("cp1256"))
    result = _invoke(tmp_path / "t.db", str(tmp_path / "cp1256.csv"), "--no-images")
    assert result.exit_code == ExitCode.PARTIAL
    assert "row 3" in result.stderr and "UTF-8" in result.stderr
    with Store(tmp_path / "t.db") as store:
        assert [p.id for p in store.iter_products()] == ["1"]


def test_folder_import_with_titles(tmp_path: Path):
    folder = tmp_path / "photos"
    (folder / "shoes").mkdir(parents=True)
    (folder / "shoes" / "s1.jpg").write_bytes(_jpeg(20))
    (folder / "bag.jpg").write_bytes(_jpeg(21))
    (tmp_path / "titles.csv").write_text("id,title\nshoes/s1.jpg,کفش ورزشی\n", "utf-8")
    result = _invoke(tmp_path / "t.db", str(folder), "--products", str(tmp_path / "titles.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "t.db") as store:
        products = {p.id: p for p in store.iter_products()}
    assert set(products) == {"bag.jpg", "shoes/s1.jpg"}
    assert products["shoes/s1.jpg"].title == "کفش ورزشی"


def test_a_labels_file_without_titles_labels_a_folder_of_images_without_a_problem(tmp_path: Path):
    """`import photos/ --products labels.csv` with only id and category: the folder gives the images, the file
    the labels. It used to say "nothing to place the products by; nothing was read" and exit 3, though it read
    and stored every label."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(3):
        (folder / f"p{n}.jpg").write_bytes(_jpeg(30 + n))
    (tmp_path / "labels.csv").write_text("id,category\np0,Footwear > Shoes\np1,Bags > Backpacks\n", "utf-8")
    result = _invoke(tmp_path / "t.db", str(folder), "--products", str(tmp_path / "labels.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "nothing was read" not in result.stderr and "placed by their images only" in result.stderr
    with Store(tmp_path / "t.db") as store:
        products = {p.id: p for p in store.iter_products()}
    assert products["p0"].category == ("Footwear", "Shoes") and products["p1"].category == ("Bags", "Backpacks")
    assert not products["p2.jpg"].category and all(p.image for p in products.values())


def test_a_tag_with_nothing_on_one_side_of_its_colon_is_named_in_a_note(tmp_path: Path):
    """`: آبی` (a name missing) and `ویژگی ها:` (a value missing) went in as plain values without a word."""
    (tmp_path / "p.csv").write_text("id,title,tags\n1,کلاه,رنگ: قرمز | : آبی\n2,کلاه,ویژگی ها: | سایز: XL\n",
                                     "utf-8")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "p.csv"), "--no-images")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "the tag ': آبی' has nothing on one side of its colon" in result.stderr
    assert result.stderr.count("nothing on one side of its colon") == 1  # once per file


def test_a_crash_half_way_keeps_what_was_stored(bad_catalogue: Path, tmp_path: Path):
    """An import that dies after its first chunk keeps that chunk; the re-run completes it."""
    db = tmp_path / "tagkit.db"
    embedder = ImageEmbedder()
    calls = {"n": 0}

    def die_on_second_chunk(done: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with Store(db) as store, pytest.raises(KeyboardInterrupt):
        import_products(store, bad_catalogue / "products.csv", embedder=embedder, chunk_size=4,
                        on_progress=die_on_second_chunk)
    with Store(db) as store:
        assert store.db.table("products").count == 8  # two chunks of 4 were committed
        report = import_products(store, bad_catalogue / "products.csv", embedder=embedder)
        assert store.db.table("products").count == 12
        assert report.images_cached >= 1  # what the first run embedded is not recomputed


def test_fashion_sample_imports_with_labels_and_features(fashion_sample: Path, tmp_path: Path):
    config = Path(__file__).resolve().parent.parent / "examples" / "fashion.yaml"
    local = tmp_path / "fashion.yaml"
    # the sample's images are extracted next to its styles.csv: drop the archive line
    local.write_text("\n".join(line for line in config.read_text("utf-8").splitlines()
                               if "image_archive" not in line), "utf-8")
    result = _invoke(tmp_path / "t.db", str(fashion_sample / "styles.csv"), "--config", str(local), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert report["products_stored"] == 300
    assert report["images_embedded"] + report["images_cached"] == 300
    with Store(tmp_path / "t.db") as store:
        product = store.product("12783")
        assert product.category == ("Apparel", "Topwear", "Kurtas")
        assert {str(t) for t in product.tags} == {"color: Red", "usage: Ethnic"}


def test_images_read_in_place_from_the_fashion_archive(shared_data: Path, tmp_path: Path):
    """examples/fashion.yaml reads images straight out of images.tar (no extraction)."""
    styles = shared_data / "fashion" / "styles.csv"
    head = tmp_path / "fashion"
    head.mkdir()
    with styles.open(encoding="utf-8") as f:
        (head / "styles.csv").write_text("".join(next(f) for _ in range(21)), "utf-8")
    (head / "images.tar").symlink_to(shared_data / "fashion" / "images.tar")
    config = Path(__file__).resolve().parent.parent / "examples" / "fashion.yaml"
    result = _invoke(tmp_path / "t.db", str(head / "styles.csv"), "--config", str(config), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["images_embedded"] == 20


def test_stats_describes_the_database(bad_catalogue: Path, tmp_path: Path):
    db = tmp_path / "tagkit.db"
    _invoke(db, str(bad_catalogue / "products.csv"))
    result = CliRunner().invoke(main, ["--db", str(db), "stats", "--json"])
    facts = json.loads(result.stdout)
    assert facts["products"]["total"] == 12
    assert facts["products"]["with_readable_image"] == 5
    assert facts["last_run"]["command"] == "import"
    assert facts["last_run"]["counts"]["products_read"] >= 12, "the run's counts are an object, not JSON text"
    assert isinstance(facts["last_run"]["args"], dict) and facts["products"]["reviewed"] == 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    with Store(db) as store:  # a run killed (or a backup taken while it ran): no run that writes has found it yet
        store.db.execute("update runs set status = 'running', pid = ? where id = ?", [gone.pid,
                                                                                     facts["last_run"]["id"]])
        store.db.conn.commit()
    facts = json.loads(CliRunner().invoke(main, ["--db", str(db), "stats", "--json"]).stdout)
    assert facts["last_run"]["status"] == "interrupted", "it said `running`"
    shutil.rmtree(bad_catalogue / "images")
    missing = CliRunner().invoke(main, ["--db", str(tmp_path / "none.db"), "stats"])
    assert missing.exit_code == ExitCode.USAGE and "no database" in missing.stderr


def test_a_file_without_a_column_keeps_what_is_stored_of_it(tmp_path: Path):
    """A file that has no title (image, category, tags) column says nothing about titles: a products file of ids
    and photos, or a misspelt `--map title=titel`, used to erase every stored title (and the next `train` learnt
    without them). An empty cell of a column the file has still says "none" to `import`; to `predict` (new
    products) it says nothing, as for labels."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    rows = list(csv.DictReader((demo / "train.csv").open(encoding="utf-8")))[:12]
    db = tmp_path / "t.db"
    with Store(db) as store:
        import_products(store, demo / "train.csv", embedder=None)
        before = {p.id: p for p in store.iter_products() if p.id in {r["id"] for r in rows}}

        def rewrite(name: str, columns: list[str], blank: str | None = None) -> Path:
            path = tmp_path / name
            with path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(columns)
                for i, row in enumerate(rows):
                    writer.writerow(["" if column == blank and i == 0 else
                                     str(demo / row[column]) if column == "image" and row[column] else row[column]
                                     for column in columns])
            return path

        import_products(store, rewrite("ids-and-photos.csv", ["id", "image"]), embedder=None)
        import_products(store, rewrite("ids-and-titles.csv", ["id", "title"]), embedder=None)
        import_products(store, rewrite("photos.csv", ["id", "image"]), embedder=None,
                        mapping=Mapping().with_overrides(["title=titel"]))
        after = {p.id: p for p in store.iter_products() if p.id in before}
        for product_id, old in before.items():
            new = after[product_id]
            assert (new.title, new.description, new.category, new.tags) == (old.title, old.description,
                                                                             old.category, old.tags)
            assert new.image == old.image
        # an empty cell: `import` (a catalogue) erases; `predict` keeps
        first = rows[0]["id"]
        import_products(store, rewrite("blank-predict.csv", ["id", "title"], blank="title"), embedder=None,
                        keep_labels=True, training=False)
        assert store.product(first).title == before[first].title
        import_products(store, rewrite("blank-import.csv", ["id", "title"], blank="title"), embedder=None)
        assert store.product(first).title == "" and store.product(first).category == before[first].category
        # a mapped attribute's column missing keeps that attribute's stored tags (the others come from the file)
        attribute = tmp_path / "colours.csv"
        attribute.write_text(f"id,title,colour\n{first},{rows[0]['title']},Crimson\n", "utf-8")
        import_products(store, attribute, embedder=None,
                        mapping=Mapping().with_overrides(["attributes.color=colour", "attributes.usage=usgae"]))
        assert {str(t) for t in store.product(first).tags} == {
            "color: Crimson", *(str(t) for t in before[first].tags if t.name == "usage")}
        # JSON records: a key absent says nothing; an empty value under any listed key says "none"
        records = tmp_path / "titles.jsonl"
        records.write_text(f'{{"id": "{first}", "name_en": ""}}\n', "utf-8")
        import_products(store, rewrite("again.csv", ["id", "title"]), embedder=None)
        import_products(store, records, embedder=None, mapping=Mapping().with_overrides(["title=name_fa,name_en"]))
        assert store.product(first).title == ""
        # eval scores what its file says: a tags-only test file is not scored on the stored categories
        seen: list = []
        import_products(store, rewrite("tags-only.csv", ["id", "title", "tags"]), embedder=None, training=False,
                        on_chunk=seen.extend)
        assert all(not p.category for p in seen) and store.product(first).category == before[first].category


def test_tags_the_record_does_not_give_are_kept_by_attribute(tmp_path: Path):
    """Tags come from a tags column and from mapped attribute columns. A record gives the tags of the columns it
    has: a JSON record without the tags key but with a mapped attribute keeps the stored tags of the other
    attributes; a mapping named by a taxonomy synonym (`colour` for `color`) keeps the canonical tags."""
    from tagkit.taxonomy import import_taxonomy, load_taxonomy

    db = tmp_path / "t.db"
    start = tmp_path / "start.csv"
    start.write_text("id,title,tags\n1,Blue backpack,color: Blue|usage: Sports|Waterproof\n", "utf-8")
    with Store(db) as store:
        import_products(store, start, embedder=None)
        record = tmp_path / "usage.jsonl"
        record.write_text('{"id": "1", "title": "Blue backpack", "use": "Travel"}\n', "utf-8")
        import_products(store, record, embedder=None, mapping=Mapping().with_overrides(["attributes.usage=use"]))
        assert set(map(str, store.product("1").tags)) == {"usage: Travel", "color: Blue", "Waterproof"}

        taxonomy = tmp_path / "taxonomy.yaml"
        taxonomy.write_text("attributes:\n  - {name: color, synonyms: [colour], open: true}\n"
                            "  - {name: usage, open: true}\n", "utf-8")
        import_taxonomy(store, load_taxonomy(taxonomy))
        again = tmp_path / "again.csv"
        again.write_text("id,title,tags\n1,Blue backpack,usage: Casual\n", "utf-8")
        import_products(store, again, embedder=None, mapping=Mapping().with_overrides(["attributes.colour=shade"]))
        assert set(map(str, store.product("1").tags)) == {"usage: Casual", "color: Blue"}


def test_a_tag_the_record_gives_is_not_kept_twice(tmp_path: Path):
    """The record's own tags give an attribute even when its mapped column is missing (Torob's `brand` key absent,
    `برند` inside `attributes`): the stored value is not kept beside the new one; a taxonomy imported after the
    products were stored compares the stored tags by its canonical names; the later record of an id wins."""
    from tagkit.taxonomy import import_taxonomy, load_taxonomy

    db = tmp_path / "t.db"
    (tmp_path / "s.csv").write_text("id,title,tags\n1,Red Shirt,colour: Red|usage: Casual\n", "utf-8")
    (tmp_path / "n.csv").write_text("id,title,tags\n1,Red Shirt,colour: Green|usage: Formal\n", "utf-8")
    with Store(db) as store:
        import_products(store, tmp_path / "s.csv", embedder=None)
        import_products(store, tmp_path / "n.csv", embedder=None,
                        mapping=Mapping().with_overrides(["attributes.colour=baseColour"]))
        assert set(map(str, store.product("1").tags)) == {"colour: Green", "usage: Formal"}

        import_products(store, tmp_path / "s.csv", embedder=None)
        taxonomy = tmp_path / "taxonomy.yaml"
        taxonomy.write_text("attributes:\n  - {name: Color, synonyms: [colour], values: [Red, Green]}\n"
                            "  - {name: usage, open: true}\n", "utf-8")
        import_taxonomy(store, load_taxonomy(taxonomy))  # without --apply: the stored tags say `colour`
        (tmp_path / "b.csv").write_text("id,title,col\n1,Red Shirt,Green\n", "utf-8")
        import_products(store, tmp_path / "b.csv", embedder=None,
                        mapping=Mapping().with_overrides(["attributes.colour=col"]))
        assert set(map(str, store.product("1").tags)) == {"Color: Green", "usage: Casual"}

        (tmp_path / "d.jsonl").write_text('{"id": "1", "title": "Red Shirt"}\n'
                                          '{"id": "1", "title": "Red Shirt", "tags": ["usage: Sports"]}\n', "utf-8")
        import_products(store, tmp_path / "d.jsonl", embedder=None)
        assert set(map(str, store.product("1").tags)) == {"usage: Sports"}


def test_a_file_without_ids_read_again_keeps_the_ids_an_older_tagkit_gave(tmp_path: Path):
    """Rows of a file without ids are `NAME:LINE`; an older tagkit stored them as `LINE`. Read again, the same rows of
    the same file keep those ids (their labels, decisions and predictions), instead of becoming second products;
    another file's rows are other products."""
    catalogue = tmp_path / "p.csv"
    catalogue.write_text("title,category\nBlue shirt,Shirts\nRed cap,Caps\n", "utf-8")
    other = tmp_path / "q.csv"
    other.write_text("title,category\nGreen scarf,Scarves\n", "utf-8")
    with Store(tmp_path / "t.db") as store:
        import_products(store, catalogue, embedder=None)
        assert sorted(p.id for p in store.iter_products()) == [f"{tmp_path.name}/p.csv:2", f"{tmp_path.name}/p.csv:3"]
        store.db.execute("update products set id = source_row")  # as an older tagkit stored them
        store.db.conn.commit()
        report = import_products(store, catalogue, embedder=None)
        assert report.products_unchanged == 2 and report.products_new == 0
        import_products(store, other, embedder=None)
        assert sorted((p.id, p.title) for p in store.iter_products()) == [
            ("2", "Blue shirt"), ("3", "Red cap"), (f"{tmp_path.name}/q.csv:2", "Green scarf")]
        elsewhere = tmp_path / "copy"  # the same file by another path (a re-audit: 200 products twice)
        elsewhere.mkdir()
        shutil.copy(catalogue, elsewhere / "p.csv")
        assert import_products(store, elsewhere / "p.csv", embedder=None).products_new == 0


def _nfd(name: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFD", name)


def test_photos_saved_by_macos_are_found_by_the_names_a_spreadsheet_writes(tmp_path: Path):
    """macOS writes file names decomposed (NFD), Excel and Windows composed (NFC): `آبی.jpg` is two strings, and
    every photo whose name has `آ` was "file not found" at a path that looked like the file's; in a folder with a
    products file, its row was left out and the photo came in without a title, under a byte-different id."""
    import unicodedata

    folder = tmp_path / "عکس‌ها"
    (folder / _nfd("آستین")).mkdir(parents=True)
    (folder / _nfd("آستین") / _nfd("آبی.jpg")).write_bytes(_jpeg(30))
    (folder / _nfd("آشپزخانه.jpg")).write_bytes(_jpeg(31))
    assert not (folder / "آستین" / "آبی.jpg").exists(), "this file system keeps the two forms apart"
    (tmp_path / "products.csv").write_text("id,title,image\nA1,پیراهن آبی,عکس‌ها/آستین/آبی.jpg\n", "utf-8")
    result = _invoke(tmp_path / "a.db", str(tmp_path / "products.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "a.db") as store:
        [product] = store.iter_products()
        assert product.image_hash and Path(product.image).is_file()
    (tmp_path / "titles.csv").write_text("id,title\nآشپزخانه,ظرف آشپزخانه\n", "utf-8")
    result = _invoke(tmp_path / "b.db", str(folder), "--products", str(tmp_path / "titles.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "b.db") as store:
        products = {p.id: p for p in store.iter_products()}
    assert set(products) == {"آشپزخانه", "آستین/آبی.jpg"}
    assert all(unicodedata.is_normalized("NFC", pid) for pid in products), "ids as typed, not as macOS names files"
    assert products["آشپزخانه"].title == "ظرف آشپزخانه" and products["آشپزخانه"].image_hash


def test_persian_names_in_a_zip_without_the_utf8_flag_are_found(tmp_path: Path):
    """macOS's Compress and Info-ZIP's `zip` write UTF-8 names without the flag that says so; Python reads them as
    cp437, so no Persian member of such an archive was ever found."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        for name, seed in ((_nfd("عکس ها/آبی ۲.jpg"), 40), ("plain/1.jpg", 41)):
            archive.writestr(name, _jpeg(seed))  # UTF-8 names, the flag set
    data = bytearray((tmp_path / "photos.zip").read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers: flag cleared
        at = data.find(signature)
        while at >= 0:
            data[at + flags + 1] &= ~0x08 & 0xFF
            at = data.find(signature, at + 4)
    (tmp_path / "photos.zip").write_bytes(bytes(data))
    assert all(not info.flag_bits & 0x800 for info in zipfile.ZipFile(tmp_path / "photos.zip").infolist())
    (tmp_path / "tagkit.yaml").write_text("input:\n  image_archive: photos.zip\n", "utf-8")
    (tmp_path / "products.csv").write_text("id,title,image\nZ1,آبی,عکس ها/آبی ۲.jpg\nZ2,one,plain/1.jpg\n",
                                           "utf-8")
    result = _invoke(tmp_path / "z.db", str(tmp_path / "products.csv"), "--config", str(tmp_path / "tagkit.yaml"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "z.db") as store:
        assert all(p.image_hash for p in store.iter_products())


def test_windows_zips_backslashes_and_dos_arabic_names_are_found(tmp_path: Path):
    """PowerShell's Compress-Archive writes `photos\\a.jpg`, and Windows' zip of an Arabic name writes it in the DOS
    code page cp720 without the UTF-8 flag: none of those photos was found (a Windows shop audit)."""
    import zipfile

    class DosName(zipfile.ZipInfo):  # a name in cp720, the UTF-8 flag not set, as an Arabic Windows writes it
        def _encodeFilenameFlags(self) -> tuple[bytes, int]:
            return self.filename.encode("cp720"), self.flag_bits

    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.writestr("photos\\a.jpg", _jpeg(60))
        archive.writestr(DosName("صور\\حقيبة.jpg"), _jpeg(61))
        archive.writestr(DosName("café.jpg"), _jpeg(62))  # (the same byte, 0x82, in cp437 and cp720)
        archive.writestr(DosName("é.jpg"), _jpeg(63))
    (tmp_path / "tagkit.yaml").write_text("input:\n  image_archive: photos.zip\n", "utf-8")
    (tmp_path / "products.csv").write_text("id,title,image\nW1,a,photos\\a.jpg\nW2,b,صور/حقيبة.jpg\n"
                                           "W3,c,café.jpg\nW4,d,./é.jpg\n", "utf-8")
    result = _invoke(tmp_path / "z.db", str(tmp_path / "products.csv"), "--config", str(tmp_path / "tagkit.yaml"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "z.db") as store:
        assert len({p.image_hash for p in store.iter_products() if p.image_hash}) == 4


def test_a_path_with_dot_dot_goes_up_from_where_a_linked_folder_really_is(tmp_path: Path):
    """`../photos/x.jpg` in a products file reached through a symbolic link: the system goes up from the link's
    target; tagkit took `..` off as text and looked beside the link."""
    (tmp_path / "real" / "data").mkdir(parents=True)
    (tmp_path / "real" / "photos").mkdir()
    (tmp_path / "real" / "photos" / "کفش ۱.jpg").write_bytes(_jpeg(50))
    (tmp_path / "real" / "data" / "p.csv").write_text("id,title,image\nS1,Red Tee,../photos/کفش ۱.jpg\n", "utf-8")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "data")
    result = _invoke(tmp_path / "s.db", str(tmp_path / "link" / "p.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "s.db") as store:
        [product] = store.iter_products()
    assert product.image_hash
    # photos that are links themselves (a store of unique files): the link is the photo, and a folder of them
    # joins its rows by it (resolving the whole path stored the target, and the join found no row's photo)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "sha-1.jpg").write_bytes(_jpeg(51))
    (tmp_path / "real" / "photos" / "a.jpg").symlink_to(tmp_path / "store" / "sha-1.jpg")
    (tmp_path / "real" / "data" / "q.csv").write_text("id,title,image\nS2,Bag,../photos/a.jpg\n", "utf-8")
    result = _invoke(tmp_path / "q.db", str(tmp_path / "real" / "photos"), "--products",
                     str(tmp_path / "link" / "q.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "q.db") as store:
        products = {p.id: p for p in store.iter_products()}
    assert products["S2"].title == "Bag" and products["S2"].image == str(tmp_path / "real" / "photos" / "a.jpg")


def test_cells_a_csv_export_protected_from_spreadsheets_are_imported_as_they_were(tmp_path: Path):
    """tagkit's CSV exports put `'` before a cell starting with = + - @ (a spreadsheet would run it); `tagkit
    import` of such a file (`feedback export --labels`, `predict --export csv`) kept the `'`, so `-12` came back
    as a second product `'-12` and a title `-50% Red Tee` as `'-50% Red Tee`."""
    from tagkit.catalogue import safe_cell

    rows = [["id", "title", "category"], ["-12", "-50% Red Tee", "A > B"], ["+98912", "@home", "A > B"]]
    with (tmp_path / "labels.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([rows[0], *([safe_cell(c) for c in row] for row in rows[1:])])
    assert "'-12,'-50% Red Tee" in (tmp_path / "labels.csv").read_text("utf-8")
    result = _invoke(tmp_path / "l.db", str(tmp_path / "labels.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "l.db") as store:
        assert {(p.id, p.title) for p in store.iter_products()} == {("-12", "-50% Red Tee"), ("+98912", "@home")}


def test_a_tag_separator_of_its_own_splits_persian_lists_and_names_tagkits_exports(tmp_path: Path):
    """A team that splits attribute columns at `;` (set in its tagkit.yaml) typed `؛` on a Persian keyboard: one
    value. And tagkit's own CSV exports (tags joined by `|`) read under that setting became one tag each, with no
    hint: the note about another separator did not know `|`."""
    (tmp_path / "tagkit.yaml").write_text("input:\n  attributes: {جنس: جنس}\n  tag_separator: \";\"\n", "utf-8")
    (tmp_path / "p.csv").write_text("id,title,جنس,tags\n1,روبان,روبان گروگرن؛ ربان لمه,\n"
                                    "2,Tee,,color: Beige|usage: Casual\n", "utf-8")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "p.csv"), "--no-images", "--config",
                     str(tmp_path / "tagkit.yaml"))
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(tmp_path / "t.db") as store:
        tags = {p.id: {str(t) for t in p.tags} for p in store.iter_products()}
    assert tags["1"] == {"جنس: روبان گروگرن", "جنس: ربان لمه"}
    said = " ".join(result.stderr.split())
    assert "holds more than one `name: value`" in said and "tagkit's own CSV exports use |" in said


def test_a_zip_member_that_unpacks_past_the_image_limit_is_refused_unread(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """A file on disk over the limit was refused by its size; a zip member was unpacked whole first (a few MB that
    unpack to gigabytes filled the memory). Its stated size is checked before it is read."""
    import zipfile

    from tagkit import archive, image

    with zipfile.ZipFile(tmp_path / "photos.zip", "w", zipfile.ZIP_DEFLATED) as photos:
        photos.writestr("zeros.jpg", bytes(200_000))
        photos.writestr("ok.jpg", _jpeg(60))
    assert (tmp_path / "photos.zip").stat().st_size < 5_000
    with pytest.raises(archive.MemberTooLarge):
        archive.read_member(f"{tmp_path / 'photos.zip'}!/zeros.jpg", limit=100_000)
    monkeypatch.setattr(image, "MAX_FILE_BYTES", 100_000)
    with pytest.raises(image.ImageError, match=r"too large for an image \(0 MiB unpacked"):
        image.read_image_bytes(f"{tmp_path / 'photos.zip'}!/zeros.jpg")
    assert image.read_image_bytes(f"{tmp_path / 'photos.zip'}!/ok.jpg") == _jpeg(60)


def test_a_damaged_zip_member_is_a_problem_and_the_run_goes_on(tmp_path: Path):
    """A member whose data fails its checksum (a bad download) stopped the run with a traceback (BadZipFile)."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "photos.zip", "w", zipfile.ZIP_DEFLATED) as photos:
        photos.writestr("bad.jpg", _jpeg(70))
        photos.writestr("good.jpg", _jpeg(71))
    data = bytearray((tmp_path / "photos.zip").read_bytes())
    data[200] ^= 0xFF  # inside bad.jpg's data
    (tmp_path / "photos.zip").write_bytes(bytes(data))
    (tmp_path / "tagkit.yaml").write_text("input:\n  image_archive: photos.zip\n", "utf-8")
    (tmp_path / "p.csv").write_text("id,title,image\nb,Bad,bad.jpg\ng,Good,good.jpg\n", "utf-8")
    result = _invoke(tmp_path / "z.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "tagkit.yaml"))
    assert result.exit_code == ExitCode.PARTIAL, result.output
    assert "p.csv, row 2, field 'image'" in result.stderr and "damaged in" in result.stderr
    with Store(tmp_path / "z.db") as store:
        products = {p.id: p for p in store.iter_products()}
    assert products["g"].image_hash and not products["b"].image_hash and products["b"].title == "Bad"


def _zip_photos(path: Path, seeds: dict[str, int], patch: tuple[int, bytes] | None = None) -> Path:
    """A zip of photos; `patch` (offset, bytes) overwrites those bytes in every local and central header (at the
    offset in a local one; the central one's is 2 further)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as photos:
        for name, seed in seeds.items():
            photos.writestr(name, _jpeg(seed))
    if patch is not None:
        data, (offset, value) = bytearray(path.read_bytes()), patch
        for signature, at_offset in ((b"PK\x03\x04", offset), (b"PK\x01\x02", offset + 2)):
            at = data.find(signature)
            while at >= 0:
                data[at + at_offset:at + at_offset + len(value)] = value
                at = data.find(signature, at + 4)
        path.write_bytes(bytes(data))
    return path


def test_archives_that_cannot_be_unpacked_are_problems_of_their_rows(tmp_path: Path):
    """An encrypted zip and one packed with Deflate64 (Windows' zip of a large folder) stopped the run with a
    traceback; a member stored with an absolute name was never found."""
    (tmp_path / "p.csv").write_text("id,title,image\na,A,images/a.jpg\nb,B,/abs/b.jpg\n", "utf-8")
    said = {}
    for name, patch in (("encrypted", (6, b"\x01")), ("deflate64", (8, b"\x09\x00")),  # the flags; the method
                        ("plain", None)):
        _zip_photos(tmp_path / f"{name}.zip", {"images/a.jpg": 80, "/abs/b.jpg": 81}, patch)
        (tmp_path / f"{name}.yaml").write_text(f"input:\n  image_archive: {name}.zip\n", "utf-8")
        result = _invoke(tmp_path / f"{name}.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / f"{name}.yaml"))
        said[name] = (result.exit_code, " ".join(result.stderr.split()))
    assert said["encrypted"][0] == ExitCode.PARTIAL and "encrypted in" in said["encrypted"][1]
    assert said["deflate64"][0] == ExitCode.PARTIAL and "(compression method 9)" in said["deflate64"][1]
    assert said["plain"][0] == ExitCode.OK, said["plain"]
    with Store(tmp_path / "plain.db") as store:
        assert all(p.image_hash for p in store.iter_products())


def test_an_archive_cut_short_is_read_to_the_cut_and_keeps_what_was_stored(tmp_path: Path):
    """A tar cut short (a download not finished) was indexed again for every product (3 s and 25 MB each on the
    fashion tar) and none of its photos was read; a zip cut short, re-downloaded over a good one, dropped the
    stored image of every product of the catalogue."""
    import tarfile

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        (photos / f"{i}.jpg").write_bytes(_jpeg(90 + i))
    with tarfile.open(tmp_path / "photos.tar", "w") as tar:
        for i in range(6):
            tar.add(photos / f"{i}.jpg", arcname=f"{i}.jpg")
    whole = (tmp_path / "photos.tar").read_bytes()
    (tmp_path / "photos.tar").write_bytes(whole[:len(whole) // 2])
    rows = "".join(f"p{i},Product {i},{i}.jpg\n" for i in range(6))
    (tmp_path / "p.csv").write_text("id,title,image\n" + rows, "utf-8")
    (tmp_path / "tar.yaml").write_text("input:\n  image_archive: photos.tar\n", "utf-8")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "tar.yaml"))
    assert result.exit_code == ExitCode.PARTIAL and "is cut short" in result.stderr
    with Store(tmp_path / "t.db") as store:
        read = {p.id for p in store.iter_products() if p.image_hash}
    assert {"p0", "p1"} <= read and "p5" not in read
    _zip_photos(tmp_path / "photos.zip", {f"{i}.jpg": 90 + i for i in range(6)})
    (tmp_path / "zip.yaml").write_text("input:\n  image_archive: photos.zip\n", "utf-8")
    assert _invoke(tmp_path / "z.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "zip.yaml")).exit_code == 0
    (tmp_path / "photos.zip").write_bytes((tmp_path / "photos.zip").read_bytes()[:3000])  # a download cut short
    result = _invoke(tmp_path / "z.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "zip.yaml"))
    assert "not a readable zip archive" in result.stderr and "the image stored before" in result.stderr
    with Store(tmp_path / "z.db") as store:
        assert all(p.image_hash for p in store.iter_products())


def test_a_products_file_that_is_a_pipe_is_a_usage_error(tmp_path: Path):
    """`tagkit import <(...)` or a named pipe gave a traceback saying there was no such file."""
    import os

    os.mkfifo(tmp_path / "fifo.csv")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "fifo.csv"), "--no-images")
    assert result.exit_code == ExitCode.USAGE and "is a pipe or a device, not a file" in result.output


def test_a_tar_cut_between_members_is_said_cut_and_dot_slash_names_are_found(tmp_path: Path):
    """A tar cut exactly between two members (or in a header) read as a whole tar, so every later row was "file
    not found"; a tar made with `tar cf x.tar ./photos` names its members `./photos/…`, and none was found."""
    import tarfile

    (tmp_path / "photos").mkdir()
    for i in range(3):
        (tmp_path / "photos" / f"{i}.jpg").write_bytes(_jpeg(100 + i))
    with tarfile.open(tmp_path / "dot.tar", "w") as tar:
        for i in range(3):
            tar.add(tmp_path / "photos" / f"{i}.jpg", arcname=f"./photos/{i}.jpg")
    whole = (tmp_path / "dot.tar").read_bytes()
    with tarfile.open(tmp_path / "dot.tar") as tar:
        second = tar.getmembers()[1].offset  # where the second member's header starts
    (tmp_path / "cut.tar").write_bytes(whole[:second])
    (tmp_path / "p.csv").write_text("id,title,image\n" + "".join(f"p{i},P,photos/{i}.jpg\n" for i in range(3)), "utf-8")
    for name in ("dot", "cut"):
        (tmp_path / f"{name}.yaml").write_text(f"input:\n  image_archive: {name}.tar\n", "utf-8")
    assert _invoke(tmp_path / "d.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "dot.yaml")).exit_code == 0
    result = _invoke(tmp_path / "c.db", str(tmp_path / "p.csv"), "--config", str(tmp_path / "cut.yaml"))
    assert result.exit_code == ExitCode.PARTIAL and result.stderr.count("is cut short after 1 files") == 2
    with Store(tmp_path / "c.db") as store:
        assert {p.id for p in store.iter_products() if p.image_hash} == {"p0"}


def test_a_products_file_given_as_a_pipe_to_products_is_a_usage_error_and_a_taxonomy_may_be_one(tmp_path: Path):
    """`--products <(...)` gave a traceback; `taxonomy import <(...)` said the pipe was a folder (it is read once,
    so it can be a pipe)."""
    import os
    import threading

    (tmp_path / "photos").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    result = _invoke(tmp_path / "t.db", str(tmp_path / "photos"), "--products", str(tmp_path / "fifo.csv"))
    assert result.exit_code == ExitCode.USAGE and "is a pipe or a device, not a file" in result.output
    os.mkfifo(tmp_path / "taxonomy.yaml")
    writer = threading.Thread(target=(tmp_path / "taxonomy.yaml").write_text,
                              args=("name: t\nattributes:\n- name: color\n  open: true\n", "utf-8"), daemon=True)
    writer.start()
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "taxonomy", "import",
                                       str(tmp_path / "taxonomy.yaml")], catch_exceptions=False)
    writer.join(timeout=10)
    assert result.exit_code == ExitCode.OK, result.output
