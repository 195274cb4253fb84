"""The train → predict → eval commands on the bundled demo catalogue: outputs, files and exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.store import Store

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one model trained on the demo catalogue."""
    db = tmp_path_factory.mktemp("cli") / "tagkit.db"
    result = tagkit(db, "train", str(DEMO / "train.csv"), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    return db


def test_train_reports_and_records_a_version(trained: Path):
    with Store(trained) as store:
        rows = list(store.db.table("models").rows)
    assert len(rows) == 1
    manifest = json.loads((Path(rows[0]["path"]) / "version.json").read_text("utf-8"))
    assert manifest["counts"]["products"] >= 300
    assert manifest["image_model"].startswith("efficientnet-lite0-int8")
    assert json.loads(rows[0]["params"])["seed"] == manifest["seed"] == 0  # the row alone says how to train it again
    listed = json.loads(tagkit(trained, "models", "--json").stdout)
    assert [m["id"] for m in listed] == [rows[0]["id"]]
    piped = CliRunner(env={"COLUMNS": None}).invoke(main, ["--db", str(trained), "models"]).stdout
    assert "validation top-1 (inputs)" in piped and "…" not in piped, "a pipe gets the table whole, not cut at 80"


def test_train_names_the_tags_too_rare_to_learn_nearest_to_enough_first(tmp_path: Path):
    """They were listed alphabetically, the first 10 of thousands, without saying what too rare means."""
    with (DEMO / "train.csv").open(encoding="utf-8") as f:
        rows = [{**row, "image": str(DEMO / row["image"]) if row["image"] else ""} for row in csv.DictReader(f)]
    for i, row in enumerate(rows[:4]):
        row["tags"] += "|feature: " + ("A rare one" if i == 3 else "Zip three")
    path = tmp_path / "train.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    as_json = json.loads(tagkit(tmp_path / "j.db", "train", str(path), "--json").stdout)
    assert list(as_json["tags_too_rare"]) == ["feature: Zip three", "feature: A rare one"]  # the same order
    result = tagkit(tmp_path / "t.db", "train", str(path))
    line = next(line for line in result.stdout.splitlines() if line.startswith("too rare to learn"))
    assert "on fewer than 5 products" in line and "the tag models do not predict them" in line
    assert line.index("feature: Zip three (3)") < line.index("feature: A rare one (1)")


def test_predict_folder_exports_csv_and_stores_predictions(trained: Path, tmp_path: Path):
    result = tagkit(trained, "predict", str(DEMO / "new"), "--export", "csv")
    assert result.exit_code == ExitCode.OK, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    images = sorted(p for p in (DEMO / "new").rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(rows) == len(images)
    assert all(row["category"] for row in rows), "every product with an image gets a category"
    known = {row["category"] for row in csv.DictReader((DEMO / "train.csv").open(encoding="utf-8"))}
    assert {row["category"] for row in rows} <= known, "predicted paths exist in the taxonomy"
    with Store(trained) as store:
        assert store.db.table("predictions").count >= len(rows)


def test_csv_and_jsonl_exports_give_the_same_scores(trained: Path):
    """The CSV export rounded tag and alternative scores to 3 decimals (0.8687 read 0.869, 0.0002 read 0.000)
    where the JSON exports and the database keep 4: the same prediction read differently by format."""
    args = ("predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "--export")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(tagkit(trained, *args, "csv").stdout))}
    records = [json.loads(line) for line in tagkit(trained, *args, "jsonl").stdout.splitlines()]
    assert len(rows) == len(records) > 0
    for record in records:
        row = rows[record["id"]]
        assert row["category_score"] == ("" if record["category_score"] is None else str(record["category_score"]))
        assert row["tag_scores"] == " | ".join(str(score) for _, score in record["tags"])
        assert row["alternatives"] == " | ".join(f"{path} ({score})" for path, score in record["alternatives"])
        assert row["candidates"] == " | ".join(f"{tag} ({score})" for tag, score in record["candidates"])
    assert any(len(str(score)) == 6 for r in records for _, score in r["tags"])  # 4 decimals do occur


def test_predict_writes_jsonl_to_a_file(trained: Path, tmp_path: Path):
    out = tmp_path / "predictions.jsonl"
    result = tagkit(trained, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "-o", str(out),
                    "--top-k", "2")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == ""
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert records and all(len(r["alternatives"]) <= 1 for r in records)
    assert all(0.0 <= r["category_score"] <= 1.0 for r in records)


def test_dash_as_the_output_file_is_stdout(trained: Path, tmp_path: Path, monkeypatch):
    """`-o -` wrote a file named `-` (predict, feedback export), where `review --sheet -` writes to stdout."""
    monkeypatch.chdir(tmp_path)
    result = tagkit(trained, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "-o", "-")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.startswith("id,title,category,category_score,") and len(result.stdout.splitlines()) > 5
    exported = tagkit(trained, "feedback", "export", "-o", "-")
    assert exported.exit_code == ExitCode.OK and exported.stdout.startswith("id,product_id,model_id,")
    assert not (tmp_path / "-").exists()


def test_csv_files_start_with_a_byte_order_mark_and_stdout_does_not(trained: Path, tmp_path: Path):
    """A double-click in Excel read the exports without one in the system's code page: Persian titles garbled, and
    garbage stored when the file was saved and imported back. tagkit reads its exports back either way."""
    files = {"predictions": tmp_path / "p.csv", "feedback": tmp_path / "f.csv", "labels": tmp_path / "l.csv"}
    source = str(DEMO / "new"), "--products", str(DEMO / "new.csv")
    assert tagkit(trained, "predict", *source, "-o", str(files["predictions"])).exit_code == ExitCode.OK
    assert tagkit(trained, "feedback", "export", "-o", str(files["feedback"])).exit_code == ExitCode.OK
    assert tagkit(trained, "feedback", "export", "--labels", "-o", str(files["labels"])).exit_code == ExitCode.OK
    for name, path in files.items():
        assert path.read_bytes().startswith(b"\xef\xbb\xbfid,"), name
    on_stdout = tagkit(trained, "predict", *source, "--export", "csv")
    assert on_stdout.stdout.startswith("id,title,")
    assert files["predictions"].read_text("utf-8-sig") == on_stdout.stdout
    db = tmp_path / "again.db"
    assert tagkit(db, "import", "--no-images", str(files["predictions"])).exit_code == ExitCode.OK
    with Store(db) as store:
        assert sorted(p.id for p in store.iter_products()) == sorted(
            row["id"] for row in csv.DictReader(io.StringIO(on_stdout.stdout)))


def test_a_config_mapping_the_image_column_does_not_fail_a_folders_titles_file(trained: Path, tmp_path: Path):
    """The team's tagkit.yaml maps `input.image`, and the nightly `predict photos/ --products titles.csv` gets a
    titles file of ids and titles: the folder gives the images, so the run is clean (it exited 3 every night, "column
    'image' (mapped to image) is not in the file", which hid real problems)."""
    with (DEMO / "new.csv").open(encoding="utf-8", newline="") as f:
        rows = [(row["id"], row["title"]) for row in csv.DictReader(f)]
    titles = tmp_path / "titles.csv"
    with titles.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("id", "title"), *rows])
    config = tmp_path / "tagkit.yaml"
    config.write_text("input:\n  image: image\n  title: title\n", "utf-8")
    result = tagkit(trained, "predict", str(DEMO / "new"), "--products", str(titles), "--config", str(config),
                    "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    summary = json.loads(result.stdout)
    assert summary["products"] == 60 and summary["no_input"] == 0, "the folder's 60 photos, 27 of them titled"
    assert summary["import"]["problem_count"] == 0
    alone = tagkit(trained, "import", str(titles), "--config", str(config))
    assert alone.exit_code == ExitCode.PARTIAL, "a products file of its own still needs its image column"
    assert "column 'image' (mapped to image) is not in the file" in alone.stderr


def test_eval_on_held_out_products(trained: Path):
    result = tagkit(trained, "eval", str(DEMO / "test.csv"), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    scores = json.loads(result.stdout)
    assert scores["seen_in_training"] == 0
    assert scores["products"] >= 80
    assert scores["category"]["accuracy"] > 0.5
    assert scores["tags"]["micro_f1"] > 0.3
    table = tagkit(trained, "eval", str(DEMO / "test.csv"))
    assert "category accuracy" in table.stdout


def test_train_embeds_the_stored_images_another_image_model_embedded(tmp_path: Path, capsys):
    """`train` without SOURCE reads the features already stored: with another image model (or after an upgrade
    that changed the features key) the images had none, and the model learnt titles only (an upgrade audit: a
    weekly cron `train` then gave no category to 33 of 60 photos, exit 0). It embeds them again from their files
    when these still hold the same picture, and names the rest."""
    rows = list(csv.DictReader((DEMO / "train.csv").open(encoding="utf-8")))[:80]
    (tmp_path / "images").mkdir()
    for row in rows:
        if row["image"]:
            shutil.copy(DEMO / row["image"], tmp_path / row["image"])
    catalogue = tmp_path / "train.csv"
    with catalogue.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    db = tmp_path / "tagkit.db"
    first = tagkit(db, "train", str(catalogue), "--json")
    assert first.exit_code == ExitCode.OK, first.stderr
    with_images = json.loads(first.stdout)["counts"]["with_image"]
    changed = [tmp_path / row["image"] for row in rows if row["image"]][:5]
    for path in changed:  # photos replaced since (another picture under the same name)
        path.write_bytes((DEMO / "images" / "dm-0400.jpg").read_bytes())
    other = tagkit(db, "train", "--image-model", "fp32", "--json")
    assert other.exit_code == ExitCode.OK, other.stderr
    counts = json.loads(other.stdout)["counts"]
    assert counts["images_embedded_again"] == with_images - 5 > 50
    from tagkit.cli import _print_train_report

    _print_train_report(json.loads(other.stdout))  # the text report says it too (only --json did)
    assert f"embedded again    {with_images - 5:,} images, cached only for another image model" in \
        capsys.readouterr().out
    assert counts["with_image"] == with_images - 5 and counts["images_not_embedded"] == 5
    assert "warning: 5 of the products learnt from have an image that was never embedded" in other.stderr
    again = tagkit(db, "train", "--image-model", "fp32", "--json")
    assert json.loads(again.stdout)["unchanged"], "the same features the second time: nothing new to learn"


def test_train_source_says_how_many_labelled_products_of_the_database_it_does_not_learn(demo_db: Path):
    """A second catalogue in the same database (or last season's file): `train SOURCE` learns SOURCE and the
    reviewed products only, and said nothing of the others."""
    imported = tagkit(demo_db, "import", str(DEMO / "test.csv"), "--no-images", "--json")
    assert imported.exit_code == ExitCode.OK, imported.stderr
    labelled = sum(1 for row in csv.DictReader((DEMO / "test.csv").open(encoding="utf-8"))
                   if row["category"] or row["tags"])
    result = tagkit(demo_db, "train", str(DEMO / "train.csv"), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    summary = json.loads(result.stdout)
    assert summary.get("unchanged") and summary["counts"]["not_in_source"] == labelled > 0
    text = tagkit(demo_db, "train", str(DEMO / "train.csv"))
    assert f"not learnt        {labelled:,} labelled products of the database that SOURCE does not have" in text.stdout


def test_eval_warns_when_products_were_trained_on(trained: Path):
    result = tagkit(trained, "eval", str(DEMO / "train.csv"), "--json")
    scores = json.loads(result.stdout)
    assert scores["seen_in_training"] == scores["products"]
    assert "not an honest estimate" in result.stderr


def test_train_attributes_switches_the_other_attributes_off(trained: Path, tmp_path: Path):
    """`train: attributes: [...]` (the switch for attributes a team cannot trust): the model learns, predicts and
    eval scores only those attributes' tags; named by any spelling or a taxonomy synonym."""
    config = tmp_path / "tagkit.yaml"
    config.write_text("train:\n  attributes: [COLOR, Colour]\n  extract: [color, usage]\n", "utf-8")
    db = tmp_path / "only-color.db"
    summary = json.loads(tagkit(db, "train", str(DEMO / "train.csv"), "--config", str(config), "--json").stdout)
    assert summary["attributes"]["kept"] == ["color"] and summary["attributes"]["not_in_labels"] == ["Colour"]
    assert "usage" in summary["attributes"]["left_out"] and "رنگ" in summary["attributes"]["left_out"]
    assert summary["counts"]["categories"] == 8, "products keep their categories"
    assert summary["extractor"]["switched_off"] == ["usage"] and summary["extractor"]["attributes"] == ["color"]
    exported = tagkit(db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "--export", "jsonl")
    tags = [tag for row in map(json.loads, exported.stdout.splitlines()) for tag in row["tags"]]
    assert tags and all(tag.startswith("color: ") for tag, _ in tags), tags[:5]
    scores = json.loads(tagkit(db, "eval", str(DEMO / "test.csv"), "--json").stdout)
    assert scores["attributes"] == ["COLOR", "Colour"] and set(scores["tags_by_attribute"]) == {"color"}
    everything = json.loads(tagkit(trained, "eval", str(DEMO / "test.csv"), "--json").stdout)
    assert {"color", "usage"} <= set(everything["tags_by_attribute"]) and "attributes" not in everything
    table = tagkit(db, "eval", str(DEMO / "test.csv")).stdout
    assert "only COLOR, Colour" in table and "train.attributes" in table


def test_predict_without_a_model_exits_with_no_model(tmp_path: Path):
    result = tagkit(tmp_path / "empty.db", "predict", str(DEMO / "new"))
    assert result.exit_code == ExitCode.NO_MODEL
    assert "predict needs a trained model" in result.stderr
    assert tagkit(tmp_path / "empty.db", "import", str(DEMO / "new"), "--no-images").exit_code == ExitCode.OK
    result = tagkit(tmp_path / "empty.db", "predict", str(DEMO / "new"))
    assert result.exit_code == ExitCode.NO_MODEL
    assert "no trained model" in result.stderr


@pytest.mark.parametrize("option", [("--products", str(DEMO / "new.csv")), ("--map", "title=name")])
def test_train_without_source_refuses_options_that_read_one(tmp_path: Path, option: tuple[str, str]):
    """They were ignored without a word: a new version was trained from the database as if they were not given."""
    result = tagkit(tmp_path / "t.db", "train", *option)
    assert result.exit_code == ExitCode.USAGE
    assert f"{option[0]} says how to read SOURCE, and no SOURCE is given" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_train_without_labels_exits_with_no_model(tmp_path: Path):
    folder = tmp_path / "unlabelled"
    shutil.copytree(DEMO / "new", folder)
    result = tagkit(tmp_path / "t.db", "train", str(folder))
    assert result.exit_code == ExitCode.NO_MODEL
    assert "nothing to learn" in result.stderr


def test_csv_export_neutralises_formulas():
    from tagkit.catalogue import safe_cell

    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("کیف پول") == "کیف پول"
    assert safe_cell(0.5) == 0.5


def test_a_tag_holding_the_tag_separator_survives_a_csv_export_read_back(tmp_path: Path):
    """The Torob brand `تام پاپ | TAMPAP` (products.jsonl has it) was written `برند: تام پاپ | TAMPAP | ...` and read
    back as two tags, `برند: تام پاپ` and a plain `TAMPAP`, without a word."""
    from tagkit.catalogue import read_products
    from tagkit.export import Exporter
    from tagkit.predicting import PredictedProduct
    from tagkit.product import Product, Tag

    tags = [("برند: تام پاپ | TAMPAP", 0.942), ("ویژگی ها: کلاه‌دار", 0.944), ("رنگ: مشکی", 0.9)]
    records = [PredictedProduct("x1", "کلاه تام پاپ TAMPAP", None, "m", "کلاه", 0.9, [], tags, []),
               PredictedProduct("x2", "کلاه مشکی", None, "m", "کلاه", 0.8, [], tags[1:], [])]
    path = tmp_path / "out.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        exporter = Exporter(out, "csv")
        for record in records:
            exporter.write(record)
        exporter.close()
    read = {item.id: item for item in read_products(path) if isinstance(item, Product)}
    assert list(read["x1"].tags) == [Tag.parse(tag) for tag, _ in tags]
    assert read["x1"].tags[0] == Tag("برند", "تام پاپ | TAMPAP")
    assert list(read["x2"].tags) == [Tag.parse(tag) for tag, _ in tags[1:]]
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["tags"] == "ویژگی ها: کلاه‌دار | رنگ: مشکی"  # as before when no tag holds a |
    assert len(rows[0]["tag_scores"].split(" | ")) == 3


def test_force_help_says_what_each_command_redoes():
    def force_help(command: str) -> str:
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).stdout.split())
        options = text[text.index("Options:"):]
        return options[options.index("--force"):options.index("--json")]

    assert force_help("import") == "--force Redo everything: rewrite unchanged products and embed cached images again. "
    assert force_help("predict").endswith("embed cached images again, predict unchanged products. ")


def test_views_read_the_database_as_a_person_would(demo_db: Path, tmp_path: Path):
    """After train and predict on the demo (and a second model that predicts only the products of new.csv), the
    views, read with the `sqlite-utils` command, give each product its newest prediction, each decision its
    product's title and each problem its product."""
    import subprocess
    import sys

    def view(name: str) -> list[dict]:
        done = subprocess.run([str(Path(sys.executable).with_name("sqlite-utils")), "rows", str(demo_db), name],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    with Store(demo_db) as store:
        (first_model,) = [row["id"] for row in store.db.table("models").rows]
    assert {row["model_id"] for row in view("latest_predictions")} == {first_model}
    assert tagkit(demo_db, "-q", "train", "--force").exit_code == ExitCode.OK  # a second version of the same input
    assert tagkit(demo_db, "-q", "predict", str(DEMO / "new.csv")).exit_code == ExitCode.OK
    with Store(demo_db) as store:
        second_model = next(store.db.query("select id from models where id != ?", [first_model]))["id"]
        predicted = {(row["product_id"], row["model_id"]): row for row in store.db.table("predictions").rows}
        titles = {row["id"]: row["title"] for row in store.db.table("products").rows}
    with (DEMO / "new.csv").open(encoding="utf-8") as f:
        in_new_csv = {row["id"] for row in csv.DictReader(f)}

    latest = view("latest_predictions")
    assert sorted(row["product_id"] for row in latest) == sorted({product for product, _ in predicted}), "one each"
    for row in latest:
        model = second_model if row["product_id"] in in_new_csv else first_model
        assert row["model_id"] == model
        stored = predicted[(row["product_id"], model)]
        assert (row["title"], row["category"], row["category_score"]) == (
            titles[row["product_id"]], stored["category"], stored["category_score"])
        tags = json.loads(stored["tags"] or "[]")
        assert row["tags"] == " | ".join(tag for tag, _ in tags)
        assert row["tag_scores"] == " | ".join(str(score) for _, score in tags)
    assert any(row["tags"] for row in latest)

    sheet = tmp_path / "decisions.csv"
    sheet.write_text("product_id,field,decision,corrected\nIMG_4167.jpg,category,correct,Home > Kitchen > Cups\n"
                     "IMG_4167.jpg,product,accept,\n", "utf-8")
    assert tagkit(demo_db, "-q", "feedback", "import", str(sheet)).exit_code == ExitCode.OK
    decisions = view("review_decisions")
    mug = ("IMG_4167.jpg", "Kronix E61 Ceramic Mug, Navy Blue")
    accepted = [tag for tag, _ in json.loads(predicted[(mug[0], second_model)]["tags"] or "[]")]
    assert accepted, "the mug's predicted tags: accepted with its review, as `a` does"
    assert [(d["product_id"], d["title"], d["field"], d["decision"], d["predicted"]) for d in decisions] == [
        (*mug, "category", "correct", None), *[(*mug, "tag", "accept", tag) for tag in accepted],
        (*mug, "product", "accept", None)]

    problems = view("problems_with_product")
    with Store(demo_db) as store:
        assert len(problems) == store.db.table("problems").count
        at = {(row["source"], row["source_row"]): row["id"] for row in store.db.table("products").rows}
    for problem in problems:
        assert problem["product_id"] == at.get((problem["file"], problem["row"]))
    empty_titles = [p for p in problems if p["field"] == "title" and p["command"] == "train"]
    assert empty_titles and all(p["product_id"] and p["title"] in ("", None) for p in empty_titles)



def test_a_problem_names_its_own_product_when_two_files_have_one_name(tmp_path: Path, monkeypatch):
    """Files are stored as given: `train.csv` read in two folders. The view joined problems to products by file
    name and row, and gave a problem of one file to the product at that row of the other, twice."""
    db = tmp_path / "t.db"
    monkeypatch.chdir(DEMO)
    tagkit(db, "import", "train.csv", "--no-images")
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.csv").write_text("id,title\n" + "".join(f"x{i},Other product {i}\n" for i in range(1, 21)))
    monkeypatch.chdir(other)
    tagkit(db, "import", "train.csv", "--no-images")
    with Store(db) as store:
        problems = list(store.db.query("select * from problems_with_product where field = 'title'"))
        assert problems and len({p["id"] for p in problems}) == len(problems)
        assert all(p["product_id"].startswith("dm-") and p["title"] == "" for p in problems), problems[:2]


def test_a_value_read_in_the_title_keeps_the_titles_spelling_end_to_end(tmp_path: Path):
    """Labels `Gender: Men's` where the title says `Men's` and `Gender: Men` where it says `Men`: the tag model reads
    both as one word and gave `Men` to every title (`Men's` only among the candidates), and `eval` scored it wrong."""
    rows = ["id,title,tags"] + [
        f"p{i},{g} Cotton Polo Shirt {('Blue', 'Red', 'Grey')[i % 3]},Gender: {g}|Material: Cotton"
        for i, g in ((i, ("Men", "Women")[i % 2] + ("'s" if i % 3 == 0 else "")) for i in range(240))]
    (tmp_path / "men.csv").write_text("\n".join(rows) + "\n", "utf-8")
    (tmp_path / "new.csv").write_text("id,title,tags\nn0,Men's Slim Fit Shirt Cotton,Gender: Men's\n"
                                      "n1,Women Slim Fit Shirt,Gender: Women\nn2,Women's Linen Shirt,Gender: Women's\n")
    (tmp_path / "tagkit.yaml").write_text("train:\n  extract: true\n", "utf-8")
    db, config = tmp_path / "t.db", str(tmp_path / "tagkit.yaml")
    assert tagkit(db, "train", str(tmp_path / "men.csv"), "--config", config).exit_code == ExitCode.OK
    exported = tagkit(db, "predict", str(tmp_path / "new.csv"), "--export", "jsonl").stdout
    genders = {row["id"]: [t for t, _ in row["tags"] if t.startswith("Gender")] for row in
               map(json.loads, exported.splitlines())}
    assert genders == {"n0": ["Gender: Men's"], "n1": ["Gender: Women"], "n2": ["Gender: Women's"]}


def test_a_sign_the_title_does_not_write_is_not_taken_from_the_extractor(tmp_path: Path):
    """`+1.5` and `-1.5` share a match key; titles write `1.5` for both (reading glasses +, myopia glasses -). The
    extractor writes such a span as the labels mostly do (`+1.5`), and the merge must not respell the tag model's
    right `-1.5` with it (an audit's set went from micro-F1 1.0 to 0.59)."""
    rows = ["id,title,tags"]
    for i in range(300):
        power, myopia = ("1.5", "2.0", "2.5")[i % 3], i % 5 < 2
        kind = "myopia glasses" if myopia else "reading glasses"
        rows.append(f"p{i},Brand{i % 7} {kind} {power} strength,power: {'-' if myopia else '+'}{power}")
    (tmp_path / "train.csv").write_text("\n".join(rows[:241]) + "\n", "utf-8")
    (tmp_path / "test.csv").write_text("\n".join([rows[0], *rows[241:]]) + "\n", "utf-8")
    (tmp_path / "tagkit.yaml").write_text("train:\n  extract: true\n", "utf-8")
    db, config = tmp_path / "t.db", str(tmp_path / "tagkit.yaml")
    assert tagkit(db, "train", str(tmp_path / "train.csv"), "--config", config).exit_code == ExitCode.OK
    scores = json.loads(tagkit(db, "eval", str(tmp_path / "test.csv"), "--json").stdout)
    assert scores["tags"]["micro_f1"] > 0.95, scores["tags"]


def test_eval_does_not_score_an_attribute_its_file_does_not_give(trained: Path, tmp_path: Path):
    """A test file with a colour column and a misspelt usage mapping: its products have no usage labels in it,
    and every predicted `usage:` tag was scored a false positive (micro precision halved in an audit)."""
    rows = list(csv.DictReader((DEMO / "test.csv").open(encoding="utf-8")))
    path = tmp_path / "colours.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "title", "image", "category", "colour"])
        for row in rows:
            colour = next((t.split(":", 1)[1].strip() for t in row["tags"].split("|") if t.startswith("color:")), "")
            writer.writerow([row["id"], row["title"], str(DEMO / row["image"]) if row["image"] else "",
                             row["category"], colour])
    result = tagkit(trained, "eval", str(path), "--map", "attributes.color=colour", "--map", "attributes.usage=usgae",
                    "--json")
    scores = json.loads(result.stdout)
    assert set(scores["tags_by_attribute"]) == {"color"}, scores["tags_by_attribute"].keys()
    assert scores["tags"]["micro_precision"] > 0.7


def test_a_sign_the_title_writes_is_kept(tmp_path: Path):
    """Titles that write `-1.5` and `+1.5`, and `1.5` labelled mostly `+1.5` (an audit's set): tokens drop the
    sign, and a title's `-1.5` was looked up as `1.5`, spelt `+1.5`, and the tag model's right `-1.5` respelled
    (every myopia product wrong)."""
    import random

    draw = random.Random(2)
    rows = ["id,title,tags"]
    for i in range(360):
        power, brand = draw.choice(("1.5", "2.0", "2.5")), draw.choice("ABCDEFG")
        rows.append((f"p{i},Reading glasses {brand} {power} diopter,power: {'+' if draw.random() < 0.7 else ''}{power}",
                     f"p{i},Myopia glasses {brand} -{power} diopter,power: -{power}",
                     f"p{i},Reader {brand} +{power} lens,power: +{power}")[i % 3])
    (tmp_path / "train.csv").write_text("\n".join(rows[:271]) + "\n", "utf-8")
    (tmp_path / "test.csv").write_text("\n".join([rows[0], *rows[271:]]) + "\n", "utf-8")
    (tmp_path / "tagkit.yaml").write_text("train:\n  extract: true\n", "utf-8")
    db, config = tmp_path / "t.db", str(tmp_path / "tagkit.yaml")
    assert tagkit(db, "train", str(tmp_path / "train.csv"), "--config", config).exit_code == ExitCode.OK
    exported = tagkit(db, "predict", str(tmp_path / "test.csv"), "--export", "jsonl").stdout
    myopia = [row for row in map(json.loads, exported.splitlines()) if "Myopia" in row["title"]]
    assert len(myopia) == 30
    for row in myopia:
        assert [t for t, _ in row["tags"]] == [f"power: -{row['title'].split(' -')[1].split()[0]}"], row


def test_a_json_export_reads_back_as_products_with_its_tags(trained: Path, tmp_path: Path):
    """Its tags are `[tag, score]` pairs: each was refused as "neither a value nor a {name, value} object"."""
    for fmt in ("jsonl", "json"):
        out = tmp_path / f"predictions.{fmt}"
        result = tagkit(trained, "-q", "predict", str(DEMO / "test.csv"), "--export", fmt, "-o", str(out))
        assert result.exit_code == ExitCode.OK, result.output
        exported = ([json.loads(line) for line in out.read_text("utf-8").splitlines()] if fmt == "jsonl" else
                    json.loads(out.read_text("utf-8")))
        db = tmp_path / f"{fmt}.db"
        result = tagkit(db, "import", str(out), "--no-images")
        assert result.exit_code == ExitCode.OK, result.stderr
        with Store(db) as store:
            stored = {p.id: p for p in store.iter_products()}
        assert sum(bool(row["tags"]) for row in exported) > 50
        for row in exported:
            assert [str(t) for t in stored[row["id"]].tags] == [tag for tag, _ in row["tags"]], row["id"]
            assert " > ".join(stored[row["id"]].category) == (row["category"] or "")


def test_two_files_without_ids_are_other_products(tmp_path: Path):
    """Files without an id column took line numbers as ids: `eval test.jsonl` replaced the products of the same
    lines of train.jsonl in the database, called them all "in the model's training data", and a later `train`
    learnt from the test labels (an audit with AE-110k's files)."""
    def without_ids(name: str) -> Path:
        rows = list(csv.DictReader((DEMO / name).open(encoding="utf-8")))
        path = tmp_path / name
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["title", "category", "tags"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return path

    db = tmp_path / "tagkit.db"
    train = tagkit(db, "train", str(without_ids("train.csv")), "--json")
    assert train.exit_code == ExitCode.OK, train.stderr
    with Store(db) as store:
        before = {p.id: p.title for p in store.iter_products()}
    result = tagkit(db, "eval", str(without_ids("test.csv")), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["seen_in_training"] == 0 and "not an honest estimate" not in result.stderr
    with Store(db) as store:
        after = {p.id: p.title for p in store.iter_products()}
        assert {pid: after[pid] for pid in before} == before, "the training products are as they were"
        assert len(store.held_out_ids()) == 100 and len(after) == len(before) + 100
