"""Hostile input, property-based (hypothesis): random bytes as images and products files, truncated and
damaged images, decompression bombs, deeply nested and enormous JSON, broken CSV quoting, NUL bytes,
mixed encodings, very long titles. The readers and the image loader must give clean per-row problems:
never an exception, never a lost row."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from tagkit.catalogue import read_folder, read_products
from tagkit.colour import colour_features
from tagkit.config import DEFAULT_MAX_TITLE_LENGTH
from tagkit.image import MAX_PIXELS, ImageError, letterbox, load_image
from tagkit.ingest import import_products
from tagkit.product import Problem, Product
from tagkit.store import Store

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text with everything a catalogue export can throw at a reader: quotes, delimiters, line breaks, NUL,
# Persian and Arabic letters, ZWNJ, right-to-left marks, BOMs, emoji, HTML, formulas
HOSTILE_CHARS = st.sampled_from([*',;|\t"\'\n\r\x00 <>&=+-@\\/:[]{}', "\ufeff", "\u200c", "\u200f", "ك", "ي", "پ", "۱",
                                 "😀", "é", "\x7f", "\x1b"])
HOSTILE_TEXT = st.text(st.one_of(HOSTILE_CHARS, st.characters(codec="utf-8")), max_size=40)


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _read(path: Path) -> tuple[list[Product], list[Problem]]:
    items = list(read_products(path))
    assert all(isinstance(item, Product | Problem) for item in items)
    products = [item for item in items if isinstance(item, Product)]
    problems = [item for item in items if isinstance(item, Problem)]
    for problem in problems:
        assert problem.file == str(path) and problem.message
        assert problem.row is None or problem.row >= 1
    return products, problems


def only(items: list[Problem]) -> Problem:
    assert len(items) == 1, items
    return items[0]


def _expected_id(raw: str) -> str:
    """An id as read back: a carriage return inside a line becomes a space, NUL bytes go, ends are stripped."""
    return re.sub(r"\r(?!\n)", " ", raw).replace("\x00", "").strip()


# -- products files --------------------------------------------------------------------------------


@SETTINGS
@given(rows=st.lists(st.tuples(HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT), max_size=12),
       terminator=st.sampled_from(["\n", "\r\n"]))
@example(rows=[("a", "x" * 300_000, "", "")], terminator="\n")  # a cell over the csv module's default limit
@example(rows=[("b", "", "", "[" * 5000 + "]" * 5000)], terminator="\n")  # nested too deep for json
@example(rows=[("c", "=HYPERLINK(\"http://x\")", "\x00\x00", "color: red | \x00")], terminator="\r\n")
def test_csv_with_hostile_cells_loses_no_row(rows: list[tuple[str, ...]], terminator: str) -> None:
    """Correctly quoted CSV (as a spreadsheet writes it) with any text in its cells: every row is read."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "products.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator=terminator)
            writer.writerow(["id", "title", "description", "tags"])
            for number, (suffix, *cells) in enumerate(rows):
                writer.writerow([f"{number}:{suffix}", *cells])
        products, problems = _read(path)
    assert [p.id for p in products] == [_expected_id(f"{n}:{row[0]}") for n, row in enumerate(rows)]
    assert not [p for p in problems if p.skipped]
    for product in products:
        assert "\x00" not in product.title + product.description + "".join(map(str, product.tags))
        assert len(product.title) <= DEFAULT_MAX_TITLE_LENGTH


@SETTINGS
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt"]))
@example(data=b'id,title\n1,"never closed\n2,b\n3,c\n', suffix=".csv")
@example(data=b"\xff\xfei\x00d\x00\n\x00", suffix=".csv")
@example(data=b"[" * 200_000, suffix=".json")
@example(data=b'{"id": 1}\n' + b"[" * 200_000 + b"\n" + b'{"id": 2}\n', suffix=".jsonl")
def test_random_bytes_as_a_products_file(data: bytes, suffix: str) -> None:
    """Any bytes at all: products and problems come out, nothing is raised."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / f"products{suffix}"
        path.write_bytes(data)
        _read(path)


@SETTINGS
@given(lines=st.lists(st.tuples(st.text(st.characters(codec="utf-8", exclude_characters="\n\r,\"\x00"), max_size=20),
                                st.sampled_from(["utf-8", "cp1256", "latin-1", "utf-16"])), min_size=1, max_size=10))
def test_mixed_encodings_keep_every_row_before_the_first_bad_line(lines: list[tuple[str, str]]) -> None:
    """A file whose lines were saved in different encodings: the rows before the first line that is not
    UTF-8 are all read, and one skipped problem names that line."""
    encoded = [f"{n},{title}".encode(encoding, errors="replace") for n, (title, encoding) in enumerate(lines)]
    bad = next((n for n, line in enumerate(encoded) if _not_utf8(line)), None)
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "products.csv"
        path.write_bytes(b"id,title\n" + b"".join(line + b"\n" for line in encoded))
        products, problems = _read(path)
    good = len(encoded) if bad is None else bad
    assert [p.id for p in products] == [str(n) for n in range(good)]
    if bad is not None:
        assert any(p.skipped and "not UTF-8" in p.message for p in problems)


def _not_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=20,
)
JSON_RECORDS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"id": HOSTILE_TEXT, "title": JSON_VALUES, "tags": JSON_VALUES,
                               "attributes": JSON_VALUES, "image": JSON_VALUES}),
        JSON_VALUES,
    ),
    max_size=8,
)


@SETTINGS
@given(records=JSON_RECORDS)
@example(records=[{"id": "1", "title": "lone \ud800 surrogate", "tags": ["\udfff"]}, {"id": "2", "title": "ok"}])
@example(records=[{"id": "1", "image": "a\x00b.jpg", "title": "\x00"}, {"id": "\x00", "image": "x" * 5000}])
def test_json_lines_one_product_or_one_skipped_problem_per_line(records: list[object]) -> None:
    """Each line of a JSON Lines file gives its product, or a problem saying the line was skipped, or is more of the
    product of the line above (same id, no title or description: counted by one note)."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "products.jsonl"
        lines = [_json_line(record, ascii_only=bool(n % 2)) for n, record in enumerate(records)]
        path.write_text("".join(line + "\n" for line in lines), "utf-8")
        products, problems = _read(path)
        skipped = {p.row for p in problems if p.skipped}
        merged = sum(int(p.message.split()[0].replace(",", "")) for p in problems
                     if "repeat the id of the row above" in p.message)
        rows = sorted([p.row for p in products] + sorted(skipped))
        assert len(rows) + merged == len(records) and len(set(rows)) == len(rows)
        assert set(rows) <= set(range(1, len(records) + 1))
        with Store(Path(name) / "t.db") as store:  # and every product can be stored, whatever its text
            report = import_products(store, path)
            assert store.db.table("products").count == len({p.id for p in products})
            assert report.products_read == len(products)


def _json_line(record: object, ascii_only: bool) -> str:
    """A JSON line, non-ASCII raw or escaped; lone surrogates (valid in JSON, not in UTF-8) always escaped."""
    line = json.dumps(record, ensure_ascii=ascii_only, allow_nan=True)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, allow_nan=True)
    return line


@pytest.mark.parametrize("depth", [50, 900, 5000, 100_000])
def test_deeply_nested_values_cost_their_row_at_most(folder: Path, depth: int) -> None:
    path = folder / "nested.jsonl"
    nested = "[" * depth + '"x"' + "]" * depth
    path.write_text(f'{{"id": "1", "title": "t", "tags": {nested}}}\n{{"id": "2", "title": "{nested}"}}\n'
                    f'{{"id": "3", "title": "fine"}}\n', "utf-8")
    products, problems = _read(path)
    assert [p.id for p in products][-1] == "3"
    assert len(products) + len([p for p in problems if p.skipped]) == 3


def test_deeply_nested_json_array_is_one_problem(folder: Path) -> None:
    path = folder / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    products, problems = _read(path)
    assert not products
    assert [p.skipped for p in problems] == [True]


def test_enormous_json_line_keeps_the_product_with_its_title_cut(folder: Path) -> None:
    path = folder / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "big", "title": "کیف " * 5_000_000, "extra": list(range(100_000))}) + "\n")
        f.write(json.dumps({"id": "small", "title": "کفش"}) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["big", "small"]
    assert len(products[0].title) <= DEFAULT_MAX_TITLE_LENGTH
    assert any(p.field == "title" and "cut" in p.message for p in problems)


def test_very_long_csv_title_is_cut_not_skipped(folder: Path) -> None:
    path = folder / "long.csv"
    path.write_text("id,title\n1," + "a" * 2_000_000 + "\n2,short\n", "utf-8")
    products, problems = _read(path)
    assert [p.id for p in products] == ["1", "2"]
    assert not [p for p in problems if p.skipped]


def test_image_file_name_that_is_not_utf8_costs_only_that_image(folder: Path) -> None:
    shop = folder / "shop"
    shop.mkdir()
    (shop / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"any bytes")  # a Latin-1 name, from an old zip
    (shop / "ok.jpg").write_bytes(b"any bytes")
    items = list(read_folder(shop))
    assert [p.id for p in items if isinstance(p, Product)] == ["ok.jpg"]
    problem = only([p for p in items if isinstance(p, Problem)])
    assert problem.skipped and "caf\ufffd.jpg" in problem.message and "not UTF-8" in problem.message
    with Store(folder / "t.db") as store:
        assert import_products(store, shop).products_read == 1


# -- images -----------------------------------------------------------------------------------------


def _photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "GIF":
        frames = [image.convert("P"), _photo(9, image.size).convert("P")]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF"]
GOOD_IMAGES = {fmt: _encode(_photo(n), fmt) for n, fmt in enumerate(FORMATS)}


def _loads_cleanly(data: bytes) -> None:
    """Either an RGB image that letterboxes to the model's input, or an ImageError with a reason."""
    try:
        image = load_image(data)
    except ImageError as error:
        assert error.reason and "\n" not in error.reason
        return
    assert image.mode == "RGB" and image.width * image.height <= MAX_PIXELS
    assert letterbox(image, 32).shape == (3, 32, 32)
    assert np.isfinite(colour_features(image)).all()  # the embedder computes them outside its decoding errors


@SETTINGS
@given(data=st.binary(max_size=4000))
def test_random_bytes_as_an_image(data: bytes) -> None:
    _loads_cleanly(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about damaged TIFF tags it skips
@SETTINGS
@given(fmt=st.sampled_from(FORMATS), cut=st.integers(0, 100_000),
       flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=8))
def test_damaged_and_truncated_images(fmt: str, cut: int, flips: list[tuple[int, int]]) -> None:
    """A real image of each format with bytes overwritten and its end cut off."""
    data = bytearray(GOOD_IMAGES[fmt])
    for position, value in flips:
        data[position % len(data)] = value
    _loads_cleanly(bytes(data[: max(1, cut % (len(data) + 1))]))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height, with a few bytes of (compressed) pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")


def _gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b",\x00\x00\x00\x00" + \
        struct.pack("<HH", width, height) + b"\x00\x02\x02\x44\x01\x00;"


def _bmp_header(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + info + b"\0" * 16


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(GOOD_IMAGES["JPEG"])
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("data", [
    _png_header(100_000, 100_000),
    _png_header(2**31 - 1, 1),
    _gif_header(65535, 65535),
    _bmp_header(60_000, 60_000),
    _jpeg_with_size(65500, 65500),
    _encode(Image.new("1", (12_000, 12_000)), "PNG"),  # real pixels, 144 Mpx, a few KB
], ids=["png-100k", "png-2^31", "gif-64k", "bmp-60k", "jpeg-64k", "png-1bit-144Mpx"])
def test_decompression_bombs_are_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(ImageError, match=r"^image too large: \d+x\d+ = "):
        load_image(data)


def test_import_of_hostile_images_keeps_every_product(folder: Path) -> None:
    """Through the real import (hashing, the bundled model): every product is stored, each bad image is
    one problem on its row, the good ones are embedded."""
    from tagkit.image import ImageEmbedder

    rng = np.random.default_rng(0)
    files = {
        "random.jpg": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "cut.png": GOOD_IMAGES["PNG"][:300],
        "bomb.png": _png_header(100_000, 100_000),
        "empty.webp": b"",
        "nul.gif": b"\x00" * 100,
        "good.jpg": GOOD_IMAGES["JPEG"],
        "good.tiff": GOOD_IMAGES["TIFF"],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    rows = [[f"p{n}", f"title {n}", name] for n, name in enumerate(files)] + [["missing", "m", "nope.jpg"]]
    with (folder / "products.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["id", "title", "image"], *rows])
    with Store(folder / "t.db") as store:
        report = import_products(store, folder / "products.csv", embedder=ImageEmbedder())
        assert store.db.table("products").count == len(rows)
    assert report.images_embedded == 2
    bad_rows = sorted(p.row for p in report.problems if p.field == "image")
    assert bad_rows == [2, 3, 4, 5, 6, 9]
