"""The catalogue reader: real data sets through the example mappings, and every kind of bad input."""

from __future__ import annotations

import json
import os
import tracemalloc
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from tagkit.catalogue import (
    ERROR_VALUE,
    LOST_LETTERS,
    read_folder,
    read_input,
    read_products,
    spreadsheet_damage,
    unmangled,
)
from tagkit.config import Mapping, load_config
from tagkit.product import Problem, Product, Tag, format_category, parse_category

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def split(items: Iterable[Product | Problem]) -> tuple[list[Product], list[Problem]]:
    products: list[Product] = []
    problems: list[Problem] = []
    for item in items:
        (problems if isinstance(item, Problem) else products).append(item)
    return products, problems


def read(path: Path, mapping: Mapping | None = None) -> tuple[list[Product], list[Problem]]:
    return split(read_products(path, mapping))


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def only(problems: list[Problem], **match: object) -> Problem:
    """The one problem whose attributes equal `match` (fails when there are none or several)."""
    found = [p for p in problems if all(getattr(p, key) == value for key, value in match.items())]
    assert len(found) == 1, f"expected one problem with {match}, got: {[str(p) for p in problems]}"
    return found[0]


def warnings(problems: list[Problem]) -> list[Problem]:
    """Problems that are not just notes."""
    return [p for p in problems if not p.info]


# -- real data --------------------------------------------------------------------------------


def test_fashion_styles_through_the_example_mapping(shared_data: Path) -> None:
    styles = shared_data / "fashion" / "styles.csv"
    products, problems = read(styles, load_config(EXAMPLES / "fashion.yaml").mapping)
    assert problems == []
    assert len(products) == 30_921
    assert len({p.id for p in products}) == 30_921
    assert all(len(p.category) == 3 for p in products)
    assert len({p.category[0] for p in products}) == 7
    first = products[0]
    assert first.id == "12783"
    assert first.title == "Mother Earth Women Aug Bagru Red Kurtas"
    assert first.category == ("Apparel", "Topwear", "Kurtas")
    assert first.tags == (Tag("color", "Red"), Tag("usage", "Ethnic"))
    assert first.image == str(shared_data / "fashion" / "images.tar") + "!/images/12783.jpg"
    assert (first.source, first.row) == (str(styles), 2)
    assert products[-1].row == 30_922
    assert all({t.name for t in p.tags} == {"color", "usage"} for p in products)
    assert Counter(t.value for p in products for t in p.tags if t.name == "usage")["Casual"] == 24_132
    assert all(p.extra == {} for p in products)  # every column is mapped


def test_fashion_sample_images_resolve_to_files_that_exist(fashion_sample: Path) -> None:
    mapping = replace(load_config(EXAMPLES / "fashion.yaml").mapping, image_archive=None)  # images extracted
    products, problems = read(fashion_sample / "styles.csv", mapping)
    assert problems == []
    assert len(products) == 300
    for product in products:
        assert product.image is not None and os.path.isabs(product.image)
        assert Path(product.image).is_file()
        assert Path(product.image).name == f"{product.id}.jpg"


def test_torob_attributes_through_the_example_mapping(shared_data: Path) -> None:
    path = shared_data / "torob_attributes" / "products.jsonl"
    products, problems = read(path, load_config(EXAMPLES / "torob.yaml").mapping)
    assert len(products) == 5_121
    assert warnings(problems) == []
    unused = only(problems, row=None)
    assert "entities, image_url, source_files" in unused.message
    first = products[0]
    assert first.id == "d978b7ba-89e6-4c1b-b193-a4fdd4c16cfe"
    assert first.title == "پیراهن زنانه سفید ال سی وایکیکی | S5MF93Z8NVY اورجینال"
    assert first.category == ("پیراهن",)
    assert first.tags == (Tag("برند", "ال سی وایکیکی"), Tag("جنسیت", "زنانه"), Tag("رنگ", "سفید"),
                          Tag("نوع کلی", "پیراهن"))
    assert first.image is None
    assert first.extra["image_url"].startswith("https://")
    # attribute tags from `attributes`, an audience tag from gender/group, never the "unknown" value
    names = Counter(t.name for p in products for t in p.tags)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert names["رنگ"] == sum(len(set(r["attributes"].get("رنگ", [])) - {"نامشخص"}) for r in raw)
    branded = [r for r in raw if r["brand"] not in (None, "نامشخص") or r["attributes"].get("برند")]
    assert names["برند"] >= len(branded) > 2000
    # a JSON string is one value, even with the CSV tag separator in it
    assert any(Tag("برند", "دکستور | Daxtors") in p.tags for p in products)
    assert not any(t.value == "نامشخص" for p in products for t in p.tags)
    assert not any("نامشخص" in p.category for p in products)
    assert all(len(p.category) <= 1 for p in products)
    assert len({p.category for p in products if p.category}) > 600
    assert all(len(set(p.tags)) == len(p.tags) for p in products)  # برند from brand and attributes once


def test_torob_titles_with_map_overrides(shared_data: Path) -> None:
    path = shared_data / "torob_titles" / "torob_quera_train.csv"
    mapping = Mapping().with_overrides(["title=name1", "description=name2", "category=cat_id"])
    products, problems = read(path, mapping)
    assert len(products) == 8_822
    assert Counter(p.category for p in products)[("0",)] == 787
    assert {p.category for p in products} == {(str(n),) for n in range(11)}
    assert all(p.title for p in products)
    assert products[0].title == "کاپشن کوهنوردی پر سنگین نورث فیس"
    # no id column: ids are the file's folder and name and line numbers, said once
    assert [p.id for p in products[:2]] == [f"torob_titles/torob_quera_train.csv:{n}" for n in (2, 3)]
    note = only(problems)
    assert note.info and "no id column" in note.message and "(torob_titles/torob_quera_train.csv:12)" in note.message


def test_torob_titles_without_a_mapping_says_what_to_map(shared_data: Path) -> None:
    """Nothing to place the products by: nothing is read (it used to store 8,822 products holding only ids)."""
    products, problems = read(shared_data / "torob_titles" / "torob_quera_train.csv")
    assert products == []
    problem = only(warnings(problems))
    assert "no title, description or image column" in problem.message and "nothing was read" in problem.message
    assert "name1, name2, cat_id" in problem.message


def test_ae110k_score_maps_become_tags_without_na(shared_data: Path) -> None:
    mapping = Mapping().with_overrides(["title=input", "tags=target_scores"])
    products, _ = read(shared_data / "ae110k" / "test.jsonl", mapping)
    assert len(products) == 524
    assert products[0].category == ("Lure",)
    assert products[0].tags == (Tag("Brand Name", "YTQHXY"), Tag("Material", "Metal"))  # n/a left out


# -- formats and encodings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.csv", "id,title,category\n1,Red shirt,Men > Shirts\n2,Blue cap,Men > Caps\n"),
        ("p.csv", "\ufeffid,title,category\n1,Red shirt,Men > Shirts\n2,Blue cap,Men > Caps\n"),
        ("p.csv", "id,title,category\r\n1,Red shirt,Men > Shirts\r\n2,Blue cap,Men > Caps\r\n"),
        ("p.csv", "id,title,category\r1,Red shirt,Men > Shirts\r2,Blue cap,Men > Caps\r"),
        ("p.csv", "\ufeffid,title,category\r1,Red shirt,Men > Shirts\r2,Blue cap,Men > Caps"),
        ("p.tsv", "id\ttitle\tcategory\n1\tRed shirt\tMen > Shirts\n2\tBlue cap\tMen > Caps\n"),
        ("p.csv", "id\ttitle\tcategory\n1\tRed shirt\tMen > Shirts\n2\tBlue cap\tMen > Caps\n"),
        ("p.csv", "id;title;category\n1;Red shirt;Men > Shirts\n2;Blue cap;Men > Caps\n"),
        ("p.txt", "id|title|category\n1|Red shirt|Men > Shirts\n2|Blue cap|Men > Caps\n"),
        ("p.csv", '"id";"title";category;"no,te"\n1;Red shirt;Men > Shirts;a\n2;Blue cap;Men > Caps;b\n'),
    ],
    ids=["comma", "bom", "crlf", "cr", "cr-bom-no-last-end", "tsv", "tab-in-csv", "semicolon", "pipe",
         "quoted-comma-header"],
)
def test_csv_dialects(tmp_path: Path, name: str, text: str) -> None:
    products, problems = read(write(tmp_path, name, text))
    assert [(p.id, p.category) for p in products] == [("1", ("Men", "Shirts")), ("2", ("Men", "Caps"))]
    assert [p.row for p in products] == [2, 3]
    assert [p.title for p in products] == ["Red shirt", "Blue cap"]
    if "no,te" in text:  # the delimiter inside a quoted column name: one column, kept as extra data
        assert [p.extra for p in products] == [{"no,te": "a"}, {"no,te": "b"}]
    else:
        assert problems == []


@pytest.mark.parametrize("hint, delimiter", [("sep=;", ";"), ("SEP=,", ","), ("sep=\t", "\t"), ("sep=|", "|"),
                                             ("sep=;;;", ";")])
def test_excels_sep_line_sets_the_delimiter_and_is_not_the_header(tmp_path: Path, hint: str, delimiter: str) -> None:
    """A CSV written for Excel starts with `sep=;` (Excel reads the delimiter from it): it was read as the header,
    and nothing was read (a Windows shop audit). Rows keep their line numbers in the file."""
    rows = ["id,title,category", "1,Red shirt,Men > Shirts", "2,Blue cap,Men > Caps", "3,Hat,Men,x"]
    text = "\ufeff" + hint + "\r\n" + "".join(row.replace(",", delimiter) + "\r\n" for row in rows)
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [(p.id, p.title, p.category, p.row) for p in products] == [
        ("1", "Red shirt", ("Men", "Shirts"), 3), ("2", "Blue cap", ("Men", "Caps"), 4)]
    assert [(p.row, p.skipped) for p in problems] == [(5, True)]  # 4 fields: line 5 of the file


@pytest.mark.parametrize("mapping", [None, Mapping(delimiter="\u061b")], ids=["sniffed", "mapped"])
def test_a_csv_separated_by_the_persian_semicolon(tmp_path: Path, mapping: Mapping | None) -> None:
    """Excel with Persian regional settings writes `؛` (U+061B) between fields: the file was read as one column and
    refused (a Windows shop audit). A `,` in a cell is then only a comma."""
    text = "\ufeffشناسه؛عنوان؛دسته\r\n1؛کیف پول، چرم؛کیف > کیف پول\r\n2؛کلاه, آبی؛پوشاک > کلاه\r\n"
    products, problems = read(write(tmp_path, "p.csv", text), replace(mapping or Mapping(), id=("شناسه",),
                                                                       title=("عنوان",), category=("دسته",)))
    assert [(p.id, p.title, p.category) for p in products] == [
        ("1", "کیف پول، چرم", ("کیف", "کیف پول")), ("2", "کلاه, آبی", ("پوشاک", "کلاه"))]
    assert problems == []


def test_carriage_return_line_ends_with_a_quoted_line_break(tmp_path: Path) -> None:
    """A classic Mac OS file (lines end in CR alone) is read line by line, a quoted line break included."""
    products, problems = read(write(tmp_path, "p.csv", 'id,title\r1,"Red\rshirt"\r2,Blue cap\r3,"never closed\r4,x\r'))
    assert [(p.id, p.title, p.row) for p in products] == [("1", "Red shirt", 2), ("2", "Blue cap", 4)]
    assert [(p.row, p.skipped) for p in problems] == [(5, True)]


@pytest.mark.parametrize("delimiter, bom", [(",", ""), (";", "\ufeff")], ids=["comma", "semicolon-bom"])
def test_carriage_return_line_ends_with_a_line_feed_in_a_quoted_cell(tmp_path: Path, delimiter: str, bom: str) -> None:
    """Old Excel for Mac ends lines in CR and writes a line break in a cell as LF: the file was read up to that LF as
    its header line ("a header line but no products", or garbage products with `;`). It reads as its CRLF twin."""
    rows = ["id,title,description,category", 'c1,Oakrest Backpack,"Roomy.\nFits a laptop.",Bags > Backpacks',
            "c2,Velto Tumbler,,Home > Mugs"]
    rows = [row.replace(",", delimiter) for row in rows]
    products, problems = read(write(tmp_path, "cr.csv", bom + "".join(row + "\r" for row in rows)))
    twins, _ = read(write(tmp_path, "crlf.csv", bom + "".join(row + "\r\n" for row in rows)))
    assert [(p.id, p.title, p.description, p.category, p.row) for p in products] == [
        ("c1", "Oakrest Backpack", "Roomy.\nFits a laptop.", ("Bags", "Backpacks"), 2),
        ("c2", "Velto Tumbler", "", ("Home", "Mugs"), 4)]
    assert [replace(p, source="") for p in products] == [replace(p, source="") for p in twins]
    assert problems == []


def test_rows_joined_by_a_carriage_return_alone_are_read_as_rows(tmp_path: Path) -> None:
    """Rows of a classic Mac file pasted into a file whose lines end in CRLF: the csv module reads them as one row of
    too many fields, which was skipped as "a comma not in quotes?". A CR inside a cell is still a space."""
    text = ('id,title,category\r\n1,Red shirt,Men > Shirts\r2,Blue cap,Men > Caps\r\n3,Green\rhat,Men > Caps\r\n'
            '4,Grey sock,Men > Socks\r5,Black\r\n')
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [(p.id, p.title, p.row) for p in products] == [
        ("1", "Red shirt", 2), ("2", "Blue cap", 2), ("3", "Green hat", 3)]
    assert [(p.row, p.info, p.skipped) for p in problems] == [(2, True, False), (4, False, True)]
    assert "line 2 holds 2 rows, ended by a carriage return alone" in problems[0].message
    assert "not in quotes?" in problems[1].message  # parts of other widths: the row is not guessed at


def _mangled(text: str, code_page: str) -> str:
    """UTF-8 `text` as a spreadsheet shows it when it reads the bytes in a Windows code page (bytes the code page
    leaves undefined become the control character of their number, as Windows maps them)."""
    return "".join(bytes([b]).decode(code_page, errors="ignore") or chr(b) for b in text.encode())


@pytest.mark.parametrize("code_page", ["cp1256", "cp1252", "mac_roman"])
def test_text_a_spreadsheet_read_in_a_windows_code_page_is_mended(tmp_path: Path, code_page: str) -> None:
    """An export double-clicked in Excel (read as Windows-1256 on a Persian Windows, -1252 on another, Mac OS Roman
    on a Mac) and saved as 'CSV UTF-8': valid UTF-8 throughout, so it was read as titles and labels of garbage,
    with no word."""
    rows = [("1", "عینک آفتابی زنانه رنگ قهوه‌ای", "مد و پوشاک > عینک", "رنگ: قهوه‌ای|جنس: فلز"),
            ("2", "Café crème mug – 330 ml", "Home > Mugs", "color: Crème")]
    text = "id,title,category,tags\n" + "".join(f"{i},{t},{c},{g}\n" for i, t, c, g in rows)
    products, problems = read(write(tmp_path, "p.csv", "\ufeff" + _mangled(text, code_page)))
    assert [(p.title, format_category(p.category), [str(t) for t in p.tags]) for p in products] == [
        (t, c, g.split("|")) for _, t, c, g in rows]
    assert problems and all(p.info and "mended" in p.message for p in problems)


def test_an_error_value_inside_a_category_path_is_not_a_category(tmp_path: Path) -> None:
    """`Apparel > #N/A` (a formula that built the path from a lookup that failed) was learnt as a category."""
    text = ('{"id": "1", "title": "Red mug", "category": ["Apparel", "#N/A"]}\n'
            '{"id": "2", "title": "Blue mug", "category": "Home > #REF!"}\n'
            '{"id": "3", "title": "Green mug", "category": "Home > Mugs #1"}\n')
    products, problems = read(write(tmp_path, "p.jsonl", text))
    assert [p.category for p in products] == [(), (), ("Home", "Mugs #1")]
    assert [(p.row, p.field, p.cause) for p in warnings(problems)] == [(1, "category", ERROR_VALUE),
                                                                        (2, "category", ERROR_VALUE)]


def test_column_names_a_spreadsheet_mangled_are_mended(tmp_path: Path) -> None:
    """The cells of a Persian-headed catalogue were mended after an Excel round trip, its column names not: `column
    'عنوان' (mapped to title) is not in the file`, nothing read (a re-audit)."""
    text = "شناسه,عنوان,دسته\n1,کیف چرمی,مد و پوشاک > کیف\n"
    mapping = Mapping().with_overrides(["id=شناسه", "title=عنوان", "category=دسته"])
    products, problems = read(write(tmp_path, "p.csv", _mangled(text, "cp1256")), mapping)
    assert [(p.id, p.title, format_category(p.category)) for p in products] == [("1", "کیف چرمی", "مد و پوشاک > کیف")]
    assert warnings(problems) == []
    assert "column names a spreadsheet read in a Windows or Mac code page" in only(problems, row=1).message


def test_real_persian_and_english_text_is_not_taken_for_mangled_text() -> None:
    """Two-letter Persian words pass for UTF-8 in Windows-1256 (`بژ` reads as `Ȏ`); the mended text must be
    letters that text holds."""
    for text in ("بژ", "رنگ: بژ", "تک", "بگ کوچک", "ط،", "Café – naïve", "Ærø", "ساعت مچی CASIO", "√2 ≈ 1.41",
                 "π ∑ µ Ω", "“quoted” ‘text’ • ¶", "Topf Ø\xa020 mm, Deckel Ø\xa030 mm"):
        assert unmangled(text) is None, text  # (a diameter and a no-break space read as U+0620, an Arabic letter)


@pytest.mark.parametrize(("mangled", "meant"), [("Womenâ€™s Shoes", "Women’s Shoes"), ("Size 6â€“8", "Size 6–8"),
                                                ("â‚¬ 20", "€ 20"), ("â€œDeluxeâ€\x9d", "“Deluxe”")])
def test_a_quote_dash_or_euro_sign_a_spreadsheet_mangled_is_mended(mangled: str, meant: str) -> None:
    """The commonest mangled English text (’ – € as `â€™` `â€“` `â‚¬`) was kept as it was, as it mends to one
    character only: `Men’s Bags` and `Menâ€™s Bags` were two categories (a re-audit)."""
    assert spreadsheet_damage(mangled)[0] == meant


def test_spreadsheet_error_values_and_question_marks_are_not_labels(tmp_path: Path) -> None:
    """VLOOKUP's `#N/A` was learnt as the biggest category; a Persian file saved as plain 'CSV' on a Windows set to
    another language (every letter `?`, still valid UTF-8) gave labels `???: ????` that merged values of a length."""
    text = ("id,title,category,tags,price\n1,Red mug,#N/A,color: Red|usage: #N/A,#N/A\n"
            "2,Blue mug,Home > Mugs,#VALUE!,\n3,?????? ????? ????,?? ? ????? > ????,???: ????|color: Black,\n"
            "4,What? Why?,Home > Mugs,,\n5,Why???, #N/A,,\n")
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [(p.id, p.title, p.category, [str(t) for t in p.tags]) for p in products] == [
        ("1", "Red mug", (), ["color: Red"]), ("2", "Blue mug", ("Home", "Mugs"), []),
        ("3", "", (), ["color: Black"]), ("4", "What? Why?", ("Home", "Mugs"), []), ("5", "Why???", (), [])]
    lost = [(p.row, p.field, p.cause) for p in problems if not p.info]
    assert lost == [(2, "category", "a spreadsheet's error value"), (2, "tags", "a spreadsheet's error value"),
                    (3, "tags", "a spreadsheet's error value"),
                    *((4, field, LOST_LETTERS) for field in ("title", "category", "tags")),
                    (6, "category", "a spreadsheet's error value")]  # (after a space: `, #N/A` was a category)
    assert "CSV UTF-8" in only(problems, row=4, field="title", info=False).message
    assert only(problems, row=2, field="tags").message == "tag 'usage: #N/A' left out: a spreadsheet's error value"
    assert only(problems, row=4, field="tags").message.endswith("save the file as 'CSV UTF-8' (Excel: File > Save As "
                                                                "> CSV UTF-8))"), "how to get the letters back"
    assert products[0].extra == {"price": "#N/A"}, "a column tagkit does not read is kept as it is, unremarked"


def test_letters_a_mac_lost_to_underscores_are_not_labels(tmp_path: Path) -> None:
    """Excel for Mac's plain 'CSV' writes `_` for each Persian letter: `____: _______` was learnt as a tag, `__ _
    _____ > ____` as a category (a Mac audit). A name with underscores in it is a name."""
    text = ("id,title,category,tags\n1,____ _______,__ _ _____ > _______,____: _______|color: Black\n"
            "2,snake_case__name mug,Home > Mugs,sku: AB__12\n")
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [(p.title, p.category, [str(t) for t in p.tags]) for p in products] == [
        ("", (), ["color: Black"]), ("snake_case__name mug", ("Home", "Mugs"), ["sku: AB__12"])]
    assert [(p.row, p.field) for p in warnings(problems)] == [(2, "title"), (2, "category"), (2, "tags")]
    assert "the text is underscores" in only(problems, row=2, field="title", info=False).message


def test_an_id_in_scientific_notation_skips_its_row(tmp_path: Path) -> None:
    """Excel shows a 13-digit barcode as `4.00638E+12`, and saves it so: two barcodes became one product."""
    products, problems = read(write(tmp_path, "p.csv", "id,title\n4.00638E+12,Mug\n4.00638E+12,Cup\n5012,Pan\n"))
    assert [p.id for p in products] == ["5012"]
    assert [(p.row, p.skipped) for p in problems] == [(2, True), (3, True)]
    assert "scientific notation" in problems[0].message and "Text" in problems[0].message


def test_a_line_break_in_a_tags_cell_ends_a_tag(tmp_path: Path) -> None:
    """Tags typed on lines of one cell (Alt+Enter) were one tag `color: Red usage: Sports`."""
    text = 'id,title,tags,colour\n1,Mug,"color: Red\nusage: Sports|size:\nL","Blue\nGreen"\n'
    products, _ = read(write(tmp_path, "p.csv", text), Mapping(attributes={"colour": ["colour"]}))
    assert [str(t) for t in products[0].tags] == ["colour: Blue", "colour: Green", "color: Red", "usage: Sports",
                                                  "size: L"]


@pytest.mark.parametrize("name", ["p.jsonl", "p.json", "p.ndjson", "products"])
def test_json_lines(tmp_path: Path, name: str) -> None:
    lines = [{"id": 1, "title": "Red shirt", "category": ["Men", "Shirts"]},
             {"id": "2", "title": "Blue cap", "category": "Men > Caps"}]
    path = write(tmp_path, name, "\n".join(json.dumps(line) for line in lines) + "\n\n")
    products, problems = read(path)
    assert problems == []
    assert [(p.id, p.title, p.category, p.row) for p in products] == [
        ("1", "Red shirt", ("Men", "Shirts"), 1), ("2", "Blue cap", ("Men", "Caps"), 2)]


def test_json_array_rows_are_item_numbers(tmp_path: Path) -> None:
    data = [{"id": 1, "title": "Red shirt"}, "oops", {"id": 3.0, "title": "Blue cap"}]
    products, problems = read(write(tmp_path, "p.json", json.dumps(data, indent=2)))
    assert [(p.id, p.row) for p in products] == [("1", 1), ("3", 3)]
    problem = only(problems)
    assert (problem.row, problem.field, problem.skipped) == (2, None, True)
    assert "item 2 is a JSON string, not a product object" in problem.message


def test_json_object_instead_of_list(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.json", '{\n  "products": [{"id": 1}]\n}\n'))
    assert products == []
    assert "one JSON object, not a list of products" in only(problems).message


def test_not_utf8_cp1256_stops_at_the_bad_line(tmp_path: Path) -> None:
    text = "id,title\n1,Plain ASCII shirt\n2,پيراهن مردانه\n3,Another shirt\n"  # Arabic yeh: cp1256 has it
    path = write(tmp_path, "persian.csv", text, encoding="cp1256")
    products, problems = read(path)
    assert [p.id for p in products] == ["1"]  # the rows before the bad line come through
    problem = only(problems)
    assert (problem.file, problem.row, problem.field, problem.skipped) == (str(path), 3, None, True)
    assert "not UTF-8" in problem.message and "Save it as UTF-8" in problem.message
    assert "Windows-1256" in problem.message
    assert "Reading stopped at line 3" in problem.message


def test_not_utf8_latin1(tmp_path: Path) -> None:
    path = write(tmp_path, "latin.csv", "id,title\n1,Café au lait mug\n", encoding="latin-1")
    products, problems = read(path)
    assert products == []
    problem = only(problems)
    assert problem.row == 2 and "Latin-1" in problem.message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_is_named(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "wide.csv", "id,title\n1,Red shirt\n", encoding=encoding)
    products, problems = read(path)
    assert products == []
    problem = only(problems)
    assert problem.row == 1 and "UTF-16" in problem.message and "not UTF-8" in problem.message


def test_not_utf8_in_json_array_names_the_line(tmp_path: Path) -> None:
    text = '[\n{"id": 1, "title": "ok"},\n{"id": 2, "title": "Café"}\n]\n'
    products, problems = read(write(tmp_path, "p.json", text, encoding="latin-1"))
    assert products == []
    assert only(problems).row == 3


def test_a_utf8_file_but_for_a_few_bytes_is_not_said_saved_in_another_encoding(tmp_path: Path) -> None:
    """A UTF-8 file cut inside a Persian letter, or with one `é` pasted in Windows-1252, was said to "look saved as
    Windows-1256" (its Persian letters read as Arabic ones in it), and to be saved as UTF-8, which it was."""
    demo = (EXAMPLES / "demo" / "train.csv").read_bytes()
    cut = demo[: max(demo.rfind(bytes([lead])) for lead in range(0xD8, 0xDC)) + 1]  # inside the last Persian letter
    (tmp_path / "cut.csv").write_bytes(cut)
    products, problems = read(tmp_path / "cut.csv")
    problem = only(problems, skipped=True)
    assert problem.row == cut.count(b"\n") + 1 and len(products) == problem.row - 2, problem
    assert "Windows" not in problem.message
    assert "the file ends in the middle of a character" in problem.message and "cut short?" in problem.message
    rows = [{"id": "a", "title": "کیف چرم"}, {"id": "b", "title": "Cafe mug"}, {"id": "c", "title": "Mug"}]
    raw = json.dumps(rows, ensure_ascii=False).encode().replace(b"Cafe", "Café".encode("cp1252"))
    for name, text in (("p.json", raw), ("p.jsonl", b"\n".join(json.dumps(row, ensure_ascii=False).encode()
                                                               for row in rows).replace(b"Cafe", b"Caf\xe9"))):
        (tmp_path / name).write_bytes(text)
        problem = only(read(tmp_path / name)[1])
        assert "Windows" not in problem.message and "in another encoding?" in problem.message, problem.message
        assert "one byte (0xE9) of line" in problem.message and "\"title\": \"Caf', is" in problem.message
    (tmp_path / "p.csv").write_bytes("id,title\na,کيف مردانه\nb,Café mug\n".encode("cp1256"))  # cp1256 all through
    assert "looks saved as Windows-1256" in only(read(tmp_path / "p.csv")[1]).message


def test_not_utf8_in_jsonl(tmp_path: Path) -> None:
    text = '{"id": 1, "title": "ok"}\n{"id": 2, "title": "پيراهن"}\n{"id": 3, "title": "ok"}\n'
    products, problems = read(write(tmp_path, "p.jsonl", text, encoding="cp1256"))
    assert [p.id for p in products] == ["1"]
    assert only(problems).row == 2


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    assert "empty" in only(read(write(tmp_path, "empty.csv", ""))[1]).message
    products, problems = read(write(tmp_path, "header.csv", "id,title\n"))
    assert products == [] and "no products" in only(problems).message


# -- row-level problems -----------------------------------------------------------------------


def test_duplicate_id_later_row_wins(tmp_path: Path) -> None:
    text = "id,title\n1,Old title\n2,Other\n1,New title\n"
    path = write(tmp_path, "dup.csv", text)
    items = list(read_products(path))
    products, problems = split(items)
    problem = only(problems)
    assert (problem.file, problem.row, problem.field, problem.skipped) == (str(path), 4, "id", False)
    assert problem.message == "duplicate id '1': row 4 replaces row 2"
    assert items.index(problem) == items.index(products[-1]) - 1  # said just before the new row
    latest = {p.id: p for p in products}  # how a consumer stores them: the later row wins
    assert latest["1"].title == "New title" and latest["1"].row == 4


def shopify_export(folder: Path, rows: list[dict[str, str]]) -> Path:
    """Products as Shopify exports them: the product's row, then a row per further size (the handle and the size
    only) and a row per further photo (the handle and the photo only; here the first photo again)."""
    import csv

    header = ["Handle", "Title", "Body (HTML)", "Type", "Tags", "Option1 Value", "Image Src", "Image Position"]
    path = folder / "products_export.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            handle = row["id"]
            writer.writerow([handle, row["title"], f"<p>{row['description']}</p>" if row["description"] else "",
                             row["category"], row["tags"].replace("|", ","), "S", row["image"], "1"])
            writer.writerow([handle, "", "", "", "", "M", "", ""])
            writer.writerow([handle, "", "", "", "", "L", "", ""])
            if row["image"]:  # a second photo (the first again)
                writer.writerow([handle, "", "", "", "", "", row["image"], "2"])
    return path


SHOPIFY = Mapping(id=("Handle",), title=("Title",), description=("Body (HTML)",), category=("Type",),
                  tags=("Tags",), image=("Image Src",), tag_separator=",")


def test_the_variant_and_photo_rows_of_a_shop_export_are_more_of_their_product(tmp_path: Path) -> None:
    """A season audit of a shop's own export: each Shopify row repeating a handle with nothing but a size or a photo
    replaced the product, so all 1,000 products lost their title, category, tags and image."""
    import csv

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    rows = list(csv.DictReader((demo / "test.csv").open(encoding="utf-8")))[:5]
    (tmp_path / "images").symlink_to(demo / "images")
    items = list(read_products(shopify_export(tmp_path, rows), SHOPIFY))
    products, problems = split(items)
    assert [p.id for p in products] == [row["id"] for row in rows]
    for product, row in zip(products, rows, strict=True):
        assert product.title == row["title"] and product.row == 2 + 4 * rows.index(row)
        assert product.category == parse_category(row["category"])
        assert product.image == str((tmp_path / row["image"]).absolute())
        assert {str(t) for t in product.tags} == set(row["tags"].split("|"))
    assert not [p for p in problems if "duplicate id" in p.message or "empty title" in p.message]
    said = only(problems, field="Handle")
    assert said.message.startswith("15 row(s) repeat the id of the row above") and said.info
    assert items[-1] is said, "said once, after the file"


def test_a_continuation_row_fills_in_only_what_the_first_row_left_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "id,title,category,image\n1,Cap,,\n1,,Hats,b.jpg\n1,,Shoes,c.jpg\n"
                                     "2,Scarf,Scarves,d.jpg\n3,Mug,Home,\n2,,Caps,e.jpg\n")
    items = list(read_products(path))
    products, problems = split(items)
    assert [(p.id, p.category, Path(p.image).name if p.image else None) for p in products] == [
        ("1", ("Hats",), "b.jpg"), ("2", ("Scarves",), "d.jpg"), ("3", ("Home",), None), ("2", ("Caps",), "e.jpg")]
    duplicate = only(problems, row=7, field="id")
    assert duplicate.message == "duplicate id '2': row 7 replaces row 5", "not right after its product: replaces"
    assert any(p.message.startswith("2 row(s) repeat the id") for p in problems)


def test_a_cell_of_several_category_paths_gives_the_deepest(tmp_path: Path) -> None:
    """WooCommerce writes every category of a product in one cell, comma-separated; each cell was read as one path
    (`Tshirts, Sale` a level of its own), and a shop audit's model learnt 55 categories instead of 12."""
    text = ("ID,Name,Categories\n"
            '1,Polo,"Apparel > Topwear > Tshirts, Sale"\n'
            '2,Mug,"New arrivals, Home > Kitchen > Mugs, Home > Kitchen"\n'
            "3,Cap,Accessories > Caps\n"
            '4,Gift,"Sale, Gifts"\n')
    path = write(tmp_path, "wc-product-export.csv", text)
    mapping = load_config_text(tmp_path, "input:\n  id: ID\n  title: Name\n  category: Categories\n"
                                         "  category_paths_separator: ','\n").mapping
    products, problems = read(path, mapping)
    assert [p.category for p in products] == [("Apparel", "Topwear", "Tshirts"), ("Home", "Kitchen", "Mugs"),
                                              ("Accessories", "Caps"), ("Sale",)]
    assert not warnings(problems)
    one_path, _ = read(path, Mapping(id=("ID",), title=("Name",), category=("Categories",)))
    assert one_path[0].category == ("Apparel", "Topwear", "Tshirts, Sale"), "without the key: one path, as before"
    again = Mapping(id=("ID",), title=("Name",), category=("Categories",)).with_overrides(
        ["category_paths_separator=,"])
    assert [p.category for p in read(path, again)[0]] == [p.category for p in products]


def test_attribute_name_and_value_columns_are_read_in_pairs(tmp_path: Path) -> None:
    """WooCommerce gives each attribute as a name column and a values column, in whatever order the shop listed
    them: mapped as `attributes.color=Attribute 1 value(s)`, a shop audit got `color: S | color: M` on 475 of 1,000
    products. Now the pairs are read as `name: value` tags, and mapping a values column is warned against."""
    text = ("ID,Name,Categories,Attribute 1 name,Attribute 1 value(s),Attribute 1 visible,Attribute 2 name,"
            "Attribute 2 value(s)\n"
            '1,تی‌شرت نخی,Apparel > Tshirts,رنگ,"آبی, سرمه‌ای",1,Size,"S, M, L"\n'
            '2,Polo,Apparel > Tshirts,Size,"M, n/a",1,رنگ,مشکی\n'
            "3,Cap,Accessories > Caps,,,,,\n")
    path = write(tmp_path, "wc-product-export.csv", text)
    mapping = Mapping(id=("ID",), title=("Name",), category=("Categories",), tag_separator=",")
    products, problems = read(path, mapping)
    assert [sorted(map(str, p.tags)) for p in products] == [
        ["Size: L", "Size: M", "Size: S", "رنگ: آبی", "رنگ: سرمه‌ای"], ["Size: M", "رنگ: مشکی"], []]
    assert [p.message.split(": ", 1)[1] for p in problems] == [
        "Attribute 1 name / Attribute 1 value(s), Attribute 2 name / Attribute 2 value(s)", "Attribute 1 visible"]
    assert all(p.info for p in problems)
    mapped = mapping.with_overrides(["attributes.color=Attribute 1 value(s)"])
    products, problems = read(path, mapped)
    warned = only(problems, field="Attribute 1 value(s)")
    assert not warned.info and "Leave both unmapped" in warned.message
    assert [str(t) for t in products[1].tags if t.name == "رنگ"] == ["رنگ: مشکی"], "pair 2 is still read"


def test_a_separator_after_a_backslash_is_part_of_the_value(tmp_path: Path) -> None:
    """WooCommerce writes a comma inside a category, tag or attribute value as `\\,`; with its recipe's `,`
    separators they were split there, leaving `Belts\\` (a re-audit)."""
    text = ("ID,Name,Categories,Tags,Attribute 1 name,Attribute 1 value(s)\n"
            '5,Belt,"Clothing > Belts\\, Leather, Sale","gift\\, boxed",Material,"Leather\\, full grain, Cotton"\n')
    mapping = Mapping(id=("ID",), title=("Name",), category=("Categories",), tags=("Tags",), tag_separator=",",
                      category_paths_separator=",")
    (product,), problems = read(write(tmp_path, "wc.csv", text), mapping)
    assert not warnings(problems)
    assert product.category == ("Clothing", "Belts, Leather")
    assert sorted(map(str, product.tags)) == ["Material: Cotton", "Material: Leather, full grain", "gift, boxed"]


def test_a_row_left_out_ends_the_rows_that_continue_a_product(tmp_path: Path) -> None:
    """A row skipped between two rows of one id let the later merge into the earlier "as the row above" (a
    re-audit): now it replaces it, as any repeated id does."""
    path = write(tmp_path, "p.csv", "id,title,category\na,Shirt,\nb,Hat,Hats,x,y\na,,Shirts\n")
    products, problems = read(path)
    assert [(p.id, p.title, p.category) for p in products] == [("a", "Shirt", ()), ("a", "", ("Shirts",))]
    assert only(problems, row=4, field="id").message == "duplicate id 'a': row 4 replaces row 2"


def test_the_further_photo_of_a_continued_row_is_not_a_product_of_its_own(tmp_path: Path) -> None:
    """With a folder of photos and a Shopify-shaped products file, a product's second photo (named on a row that
    continues the product's row) became a product without title or labels, said to have no row (a re-audit)."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "images"
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("dm-0001.jpg", "dm-0002.jpg", "dm-0003.jpg"):
        (folder / name).write_bytes((demo / name).read_bytes())
    sheet = write(tmp_path, "products.csv", "Handle,Title,Image Src\nred-shirt,Red shirt,dm-0001.jpg\n"
                                            "red-shirt,,dm-0002.jpg\nmug,Mug,dm-0003.jpg\n")
    mapping = Mapping(id=("Handle",), title=("Title",), image=("Image Src",))
    products, problems = split(read_folder(folder, products=sheet, mapping=mapping))
    assert [(p.id, Path(p.image).name) for p in products] == [("red-shirt", "dm-0001.jpg"), ("mug", "dm-0003.jpg")]
    assert any(p.message.startswith("1 images are further photos of products") for p in problems)
    assert not any("have no row" in p.message for p in problems)


def test_a_row_naming_a_heic_photo_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "heic"
    folder.mkdir()
    (folder / "a.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    sheet = write(tmp_path, "p.csv", "id,title,image\na,Shirt,a.HEIC\n")
    _, problems = split(read_folder(folder, products=sheet))
    row = only(problems, row=2)
    assert row.skipped and "its image 'a.HEIC' is a HEIC photo" in row.message and "matches" not in row.message
    (product,), problems = read(write(folder, "alone.csv", "id,title,image\na,Shirt,a.HEIC\n"))
    assert product.image is None and "is a HEIC photo (an iPhone's default format)" in only(problems).message


def load_config_text(folder: Path, text: str):
    (folder / "tagkit.yaml").write_text(text, "utf-8")
    return load_config(folder / "tagkit.yaml")


def test_a_workbook_given_as_a_products_file_is_named_as_one(tmp_path: Path) -> None:
    """An .xlsx was read as text and said to "look saved as Windows-1252" (a shop audit)."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "shop.xlsx", "w") as workbook:
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    write(tmp_path, "old.xls", "").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    for name, kind in (("shop.xlsx", "a zip archive (a spreadsheet workbook"),
                       ("old.xls", "an old Excel workbook (.xls)")):
        products, problems = read(tmp_path / name)
        problem = only(problems)
        assert not products and problem.skipped and problem.message.startswith(f"this is {kind}")
        assert "save it as CSV UTF-8" in problem.message
    import bz2  # a compressed file was said to look saved as Windows-1252 or Windows-1256
    import gzip

    for packed, name in ((gzip.compress(b"id,title\na,t\n"), "gzip"), (bz2.compress(b"id,title\na,t\n"), "bzip2")):
        (tmp_path / "p.csv").write_bytes(packed)
        problem = only(read(tmp_path / "p.csv")[1])
        assert problem.skipped and problem.message.startswith(f"this file is {name}-compressed: unpack it first")


def test_apple_documents_are_named_with_numbers_way_to_csv(tmp_path: Path) -> None:
    """A Numbers spreadsheet saved as a package (a folder) was read as a folder of photos, its previews stored as
    products; one saved as a zip was told Excel's "File > Save As > CSV UTF-8" (a Mac shop audit)."""
    import zipfile

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "images"
    package = tmp_path / "Shop.Numbers"
    for part in ("Index", "Data", "Metadata"):
        (package / part).mkdir(parents=True)
    (package / "preview.jpg").write_bytes((demo / "dm-0001.jpg").read_bytes())
    (package / "Data" / "image-small-1234.jpg").write_bytes((demo / "dm-0002.jpg").read_bytes())
    (package / "Index" / "Document.iwa").write_bytes(b"x")
    with zipfile.ZipFile(tmp_path / "shop.numbers", "w") as document:
        document.writestr("Index/Document.iwa", "x")
    with zipfile.ZipFile(tmp_path / "notes.pages", "w") as document:
        document.writestr("Index/Document.iwa", "x")
    for path, kind in ((package, "a Numbers spreadsheet saved as a package (a folder), not a folder of photos"),
                       (tmp_path / "shop.numbers", "a Numbers spreadsheet, not a products file"),
                       (tmp_path / "notes.pages", "a Pages document, not a products file")):
        products, problems = split(read_input(path))
        problem = only(problems)
        assert not products and problem.skipped and problem.message.startswith(f"this is {kind}")
        assert problem.message.endswith("export it as CSV (in Numbers: File > Export To > CSV…)")
        assert "Excel" not in problem.message


def test_photos_tagkit_cannot_read_are_told_not_passed_over(tmp_path: Path) -> None:
    """iPhone photos (HEIC) in a folder were skipped in silence, and a products row for one was said to match no
    image (a shop audit)."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "new"
    (tmp_path / "shoes").mkdir()
    (tmp_path / "shoes" / "a.jpg").write_bytes((demo / "IMG_4116.jpg").read_bytes())
    (tmp_path / "shoes" / "b.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "c.dng").write_bytes(b"II*\x00")
    products, problems = split(read_folder(tmp_path))
    assert [p.id for p in products] == ["shoes/a.jpg"]
    assert [(p.field, p.skipped, p.message.split(",")[0]) for p in problems] == [
        ("image", True, "'c.dng' is a camera's raw photo"),
        ("image", True, "'shoes/b.HEIC' is a HEIC photo (an iPhone's default format)")]
    assert all("save it as JPEG" in p.message for p in problems)


def test_photos_in_icloud_not_downloaded_are_told_not_passed_over(tmp_path: Path) -> None:
    """A folder kept in iCloud Drive with Optimise Mac Storage holds the hidden placeholder `.IMG_4.jpg.icloud` for a
    photo not downloaded: it was passed over in silence, and a products row naming IMG_4.jpg matched "no image"."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "images"
    folder = tmp_path / "photos"
    (folder / "shoes").mkdir(parents=True)
    (folder / "IMG_1.jpg").write_bytes((demo / "dm-0001.jpg").read_bytes())
    (folder / "shoes" / "IMG_3.jpg").write_bytes((demo / "dm-0003.jpg").read_bytes())
    for placeholder in (".IMG_4.jpg.icloud", "shoes/.IMG_5.HEIC.icloud", "shoes/.IMG_3.jpg.icloud",
                        ".notes.txt.icloud"):  # (IMG_3.jpg downloaded since, notes.txt no photo: no word of them)
        (folder / placeholder).write_bytes(b"bplist00")
    products, problems = split(read_folder(folder))
    assert [p.id for p in products] == ["IMG_1.jpg", "shoes/IMG_3.jpg"]
    in_icloud = "is in iCloud, not downloaded to this Mac: open the folder in Finder and choose Download Now"
    assert [(p.field, p.skipped, p.message.startswith(name)) for p, name in zip(problems, ("'IMG_4.jpg' ",
            "'shoes/IMG_5.HEIC' "), strict=True)] == [("image", True, True)] * 2
    assert all(in_icloud in p.message for p in problems)
    assert "it is also a HEIC photo" in problems[1].message
    sheet = write(tmp_path, "p.csv", "id,title,image\na,Bag,IMG_1.jpg\nb,Hat,IMG_4.jpg\n")
    _, problems = split(read_folder(folder, products=sheet))
    row = only(problems, row=3)
    assert row.skipped and f"its image 'IMG_4.jpg' {in_icloud}" in row.message and "matches" not in row.message


def test_empty_title_is_kept_and_noted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "id,title,description,image\n1,,,a.jpg\n2,Cap,,b.jpg\n3,,,\n4,,Soft cap,\n")
    products, problems = read(path)
    assert [p.id for p in products] == ["1", "2", "3", "4"]
    assert len(problems) == 3 and all(p.info for p in problems)
    first = only(problems, row=2)
    assert (first.field, first.skipped) == ("title", False)
    assert first.message == "empty title: product kept, to be placed by its image only"
    assert "placed by nothing (it has no description or image either)" in only(problems, row=4).message
    assert "placed by its description only" in only(problems, row=5).message


def test_empty_title_not_noted_without_a_title_column(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.csv", "id,image\n1,a.jpg\n2,b.jpg\n"))
    assert len(products) == 2
    assert [p.message for p in problems] == ["no title column: stored products keep their titles; new ones will be "
                                             "placed by their images only"]


def test_row_with_extra_fields_is_skipped(tmp_path: Path) -> None:
    text = "id,title,category\n1,Shirt,Men\n2,Shirt, red,Men\n3,Cap,Men,\n"
    path = write(tmp_path, "p.csv", text)
    products, problems = read(path)
    assert [p.id for p in products] == ["1", "3"]  # a trailing empty field is harmless
    problem = only(problems)
    assert (problem.file, problem.row, problem.field, problem.skipped) == (str(path), 3, None, True)
    assert "expected 3 fields (one per column), found 4" in problem.message
    assert "comma that is not in quotes" in problem.message and "Row skipped" in problem.message


def test_row_with_missing_fields_is_kept(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.csv", "id,title,category,tags\n1,Shirt\n2,Cap,Men,red\n"))
    assert [(p.id, p.title, p.category) for p in products] == [("1", "Shirt", ()), ("2", "Cap", ("Men",))]
    problem = only(problems)
    assert (problem.row, problem.field, problem.skipped) == (2, None, False)
    assert "expected 4 fields (one per column), found 2: category, tags missing" in problem.message
    assert "Row kept" in problem.message


def test_multiline_quoted_field_keeps_line_numbers(tmp_path: Path) -> None:
    text = 'id,title,description\n1,Shirt,"line one\nline two\nline three"\n2,Cap,short\n'
    products, problems = read(write(tmp_path, "p.csv", text))
    assert problems == []
    assert [(p.id, p.row) for p in products] == [("1", 2), ("2", 5)]
    assert products[0].description == "line one\nline two\nline three"


def test_unclosed_quote_is_pointed_out(tmp_path: Path) -> None:
    text = 'id,title,category\n1,"Shirt,Men\n2,Cap,Men\n3,Hat,Men\n'
    products, problems = read(write(tmp_path, "p.csv", text))
    assert products == []
    problem = only(problems, skipped=True)
    assert problem.row == 2
    assert "runs from line 2 to line 4" in problem.message and "never closed" in problem.message


def test_bad_json_lines_are_skipped_and_the_rest_read(tmp_path: Path) -> None:
    text = '{"id": 1, "title": "Shirt"}\n{"id": 2, "title": "Cap"\n[1, 2]\n\n{"id": 5, "title": "Hat"}\n'
    path = write(tmp_path, "p.jsonl", text)
    products, problems = read(path)
    assert [(p.id, p.row) for p in products] == [("1", 1), ("5", 5)]
    bad = only(problems, row=2)
    assert (bad.file, bad.field, bad.skipped) == (str(path), None, True)
    assert bad.message.startswith("not valid JSON: Expecting ',' delimiter")
    not_object = only(problems, row=3)
    assert not_object.skipped and "a JSON list, not a product object" in not_object.message


def test_url_image_is_not_fetched(tmp_path: Path) -> None:
    text = "id,title,image\n1,Shirt,https://example.com/a.jpg\n2,Cap,pics/b.jpg\n3,Hat,/abs/c.png\n"
    path = write(tmp_path, "p.csv", text)
    products, problems = read(path)
    assert [p.image for p in products] == [None, str(tmp_path / "pics" / "b.jpg"), "/abs/c.png"]
    problem = only(problems)
    assert (problem.row, problem.field, problem.skipped) == (2, "image", False)
    assert "is a URL: tagkit is offline" in problem.message


def test_an_image_url_reads_the_downloaded_photo_of_its_name(tmp_path: Path) -> None:
    """A shop export names its photos by URL (Shopify's `Image Src`, WooCommerce's `Images`, several in a cell): the
    team downloads them, and tagkit looked for none of them (a user had to rewrite the column)."""
    for name in ("blue-shirt.jpg", "Red Cap.png", "first.jpg", "belt.jpg?v=17"):  # wget keeps a query in the name
        (tmp_path / name).write_bytes(b"photo")
    text = ("id,title,image\n"
            "1,Shirt,https://cdn.shopify.com/s/files/1/0533/files/blue-shirt.jpg?v=1700000000\n"
            "2,Cap,https://shop.example/wp-content/uploads/2024/01/Red%20Cap.png\n"
            '3,Hat,"https://shop.example/up/first.jpg, https://shop.example/up/second.jpg"\n'
            "4,Scarf,https://shop.example/up/never-downloaded.jpg\n"
            "5,Belt,https://shop.example/\n"
            "6,Belt,https://cdn.shopify.com/s/files/1/0533/files/belt.jpg?v=17\n")
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [p.image for p in products] == [str(tmp_path / "blue-shirt.jpg"), str(tmp_path / "Red Cap.png"),
                                           str(tmp_path / "first.jpg"), None, None, str(tmp_path / "belt.jpg?v=17")]
    missing = only(problems, row=5)
    assert (missing.field, missing.skipped) == ("image", False)
    assert "is a URL: tagkit is offline" in missing.message and "'never-downloaded.jpg'" in missing.message
    assert f"put the downloaded photos in '{tmp_path}'" in missing.message
    assert "names no file" in only(problems, row=6).message
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "never-downloaded.jpg").write_bytes(b"photo")
    products, problems = read(write(tmp_path, "p.csv", text), Mapping(image_folder=photos))
    assert products[3].image == str(photos / "never-downloaded.jpg") and products[0].image is None


def test_a_folder_of_downloaded_photos_joins_the_rows_naming_their_urls(tmp_path: Path) -> None:
    """A Shopify handle is not a photo's file name: rows whose image is a URL joined no downloaded photo."""
    folder = make_folder(tmp_path / "photos", ["blue-shirt.jpg", "mug_1.png"])
    sheet = write(tmp_path, "products.csv", "Handle,Title,Image Src\n"
                                            "shirt,Shirt,https://cdn.shopify.com/s/files/1/files/blue-shirt.jpg?v=2\n"
                                            "mug,Mug,https://cdn.shopify.com/s/files/1/files/mug_1.png\n")
    mapping = Mapping(id=("Handle",), title=("Title",), image=("Image Src",))
    products, problems = split(read_folder(folder, products=sheet, mapping=mapping))
    assert sorted((p.id, Path(p.image).name, p.title) for p in products) == [
        ("mug", "mug_1.png", "Mug"), ("shirt", "blue-shirt.jpg", "Shirt")]
    assert problems == []


def test_a_url_whose_photo_name_is_in_two_subfolders_says_what_to_do(tmp_path: Path) -> None:
    """Two downloaded photos of the URL's file name: the row is left out, and the message says both ways out (it
    asked for "its path in the folder" only, where the cell is a URL)."""
    folder = make_folder(tmp_path / "photos", ["a/shirt.jpg", "b/shirt.jpg", "mug.png"])
    sheet = write(tmp_path, "products.csv", "Handle,Title,Image Src\n"
                                            "shirt,Shirt,https://cdn.shopify.com/files/shirt.jpg?v=2\n"
                                            "mug,Mug,https://cdn.shopify.com/files/mug.png\n")
    mapping = Mapping(id=("Handle",), title=("Title",), image=("Image Src",))
    products, problems = split(read_folder(folder, products=sheet, mapping=mapping))
    assert {p.id: p.title for p in products} == {"mug": "Mug", "a/shirt.jpg": "", "b/shirt.jpg": ""}
    problem = only(problems, row=2)
    assert problem.skipped and "2 images in" in problem.message
    assert ("keep one photo of that name in the folder, or write the path of one in the row's image cell "
            "(a/shirt.jpg)") in problem.message


def test_image_folder_from_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "sku,name,photo\n1,Shirt,b.jpg\n")
    mapping = Mapping(id=("sku",), title=("name",), image=("photo",), image_folder=tmp_path / "photos")
    products, problems = read(path, mapping)
    assert problems == [] and products[0].image == str(tmp_path / "photos" / "b.jpg")


def test_html_is_stripped_from_description_and_title(tmp_path: Path) -> None:
    rows = [{"id": "1", "title": "<b>Red</b> &amp; blue\n shirt",
             "description": "<p>Soft <i>cotton</i>.</p><ul><li>Machine wash</li></ul><script>x()</script>"}]
    products, problems = read(write(tmp_path, "p.jsonl", json.dumps(rows[0])))
    assert problems == []
    assert products[0].title == "Red & blue shirt"
    assert products[0].description == "Soft cotton.\nMachine wash"


def test_nul_bytes_are_removed_and_reported(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.csv", "id,title\n1,Sh\x00irt\n2,Cap\n"))
    assert [p.title for p in products] == ["Shirt", "Cap"]
    problem = only(problems)
    assert (problem.row, problem.field, problem.skipped) == (2, "title", False)
    assert "NUL" in problem.message


def test_long_title_is_cut(tmp_path: Path) -> None:
    title = "word " * 200  # 1,000 characters
    path = write(tmp_path, "p.csv", f"id,title\n1,{title}\n")
    products, problems = read(path, Mapping(max_title_length=100))
    assert len(products[0].title) <= 100 and products[0].title.endswith("word")
    problem = only(problems)
    assert (problem.row, problem.field) == (2, "title")
    assert "title is 999 characters long; cut to the first 100" in problem.message


def test_empty_id_is_skipped(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.csv", "id,title\n,Shirt\n2,Cap\n"))
    assert [p.id for p in products] == ["2"]
    problem = only(problems)
    assert (problem.row, problem.field, problem.skipped) == (2, "id", True)


def test_no_id_column_uses_image_path_or_line_number(tmp_path: Path) -> None:
    """Without the file's name, the rows of two files without ids were one product: an `eval` of test.jsonl
    replaced the training products of train.jsonl in the database (an audit)."""
    products, problems = read(write(tmp_path, "p.csv", "title,image\nShirt,a.jpg\nCap,\n"))
    assert [p.id for p in products] == ["a.jpg", f"{tmp_path.name}/p.csv:3"]
    note = only(problems)
    assert note.info and note.row is None
    assert "no id column" in note.message and "image path" in note.message
    other, _ = read(write(tmp_path, "q.csv", "title,image\nBelt,\nHat,\n"))
    assert [p.id for p in other] == [f"{tmp_path.name}/q.csv:2", f"{tmp_path.name}/q.csv:3"]
    for folder in ("train", "test"):  # the same file name in two folders (a re-audit)
        (tmp_path / folder).mkdir()
        same, _ = read(write(tmp_path / folder, "p.csv", "title\nBelt\n"))
        assert [p.id for p in same] == [f"{folder}/p.csv:2"]


def test_unused_columns_are_noted_once_and_kept_as_extra(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.csv", "id,title,price,stock\n1,Shirt,10,3\n2,Cap,5,0\n"))
    assert products[0].extra == {"price": "10", "stock": "3"}
    note = only(problems)
    assert note.info
    assert note.message == "columns not mapped to a tagkit field, kept as extra data: price, stock"


def test_mapped_column_missing_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "id,ProductName\n1,Shirt\n")
    products, problems = read(path, Mapping(title=("productName",)))
    assert products[0].title == "Shirt"  # names match regardless of case
    products, problems = read(path, Mapping(title=("productTitle",)))
    problem = only(problems, field="productTitle")
    expected = "column 'productTitle' (mapped to title) is not in the file (did you mean 'ProductName'?)"
    assert expected in problem.message
    assert problem.message.endswith("its columns are: id, ProductName")


def test_category_levels_and_a_gap(tmp_path: Path) -> None:
    text = "id,title,a,b,c\n1,Shirt,Men,Tops,Shirts\n2,Cap,Men,,Caps\n3,Hat,Men,Hats,\n4,Bag,NaN,,\n"
    mapping = Mapping(category=("a", "b", "c"))
    products, problems = read(write(tmp_path, "p.csv", text), mapping)
    assert [p.category for p in products] == [("Men", "Tops", "Shirts"), ("Men",), ("Men", "Hats"), ()]
    problem = only(problems)
    assert (problem.row, problem.field) == (3, "b")
    assert "category level 2 is empty but a deeper one is set" in problem.message


def test_tags_column_in_csv(tmp_path: Path) -> None:
    text = 'id,title,tags\n1,Shirt,color: red | cotton |  | size:XL\n2,Cap,"[""summer"", ""color: blue""]"\n'
    products, problems = read(write(tmp_path, "p.csv", text))
    assert problems == []
    assert products[0].tags == (Tag("color", "red"), Tag("", "cotton"), Tag("size", "XL"))
    assert products[1].tags == (Tag("", "summer"), Tag("color", "blue"))


def test_full_width_separators_split_as_their_ascii_forms(tmp_path: Path) -> None:
    """`｜` between tags and `＞` between category levels (Persian and East Asian keyboards): one tag was kept as
    `رنگ: مشکی ｜ جنس: چرم`, and `جنس: چرم` was lost."""
    text = "id,title,category,tags,colour\n1,کیف,کیف ＞ کیف دستی,رنگ: مشکی ｜ جنس: چرم,قهوه‌ای｜کرم\n"
    products, problems = read(write(tmp_path, "p.csv", text), Mapping(attributes={"رنگ": ("colour",)}))
    assert problems == []
    assert products[0].category == ("کیف", "کیف دستی")
    assert set(products[0].tags) == {Tag("رنگ", "مشکی"), Tag("جنس", "چرم"), Tag("رنگ", "قهوه‌ای"), Tag("رنگ", "کرم")}
    assert parse_category("کیف ＞ کیف دستی") == ("کیف", "کیف دستی")


def test_a_semicolon_separator_splits_at_the_persian_one_unless_escaped(tmp_path: Path) -> None:
    """With `tag_separator: ";"`, a Persian keyboard's `؛` was no separator (one value `روبان گروگرن؛ ربان لمه`);
    an escaped one is part of the value, and stays `؛` (it came back as a Latin `;`)."""
    text = "id,title,جنس\n1,روبان,روبان گروگرن؛ ربان لمه; ساتن\n2,x,قرمز\\؛ آبی\n"
    products, problems = read(write(tmp_path, "p.csv", text), Mapping(attributes={"جنس": ("جنس",)}, tag_separator=";"))
    assert problems == []
    assert [set(p.tags) for p in products] == [{Tag("جنس", "روبان گروگرن"), Tag("جنس", "ربان لمه"), Tag("جنس", "ساتن")},
                                               {Tag("جنس", "قرمز؛ آبی")}]


def test_attribute_columns_and_json_tag_shapes(tmp_path: Path) -> None:
    record = {
        "id": "t1", "title": "Shirt", "colour": ["Red", "Blue"], "material": "", "size": "S|M",
        "attributes": {"جنس": ["نخی"], "سایز": "XL", "n": {"a": 1, "n/a": 1}},
        "entities": [{"name": "طرح", "values": ["ساده"]}, {"name": "یقه", "value": "گرد"},
                     "plain", 7, {"x": 1}],
    }
    attributes = {"color": ("colour",), "material": ("material", "colour"), "size": ("size",)}
    mapping = Mapping(tags=("attributes", "entities"), attributes=attributes)
    products, problems = read(write(tmp_path, "p.jsonl", json.dumps(record, ensure_ascii=False)), mapping)
    assert products[0].tags == (
        Tag("color", "Red"), Tag("color", "Blue"), Tag("material", "Red"), Tag("material", "Blue"),
        Tag("size", "S|M"),  # a JSON string is one value; lists hold several
        Tag("جنس", "نخی"), Tag("سایز", "XL"), Tag("n", "a"), Tag("طرح", "ساده"), Tag("یقه", "گرد"),
        Tag("", "plain"), Tag("", "7"),
    )
    problem = only(problems)
    assert (problem.row, problem.field) == (1, "entities")
    assert 'tag 5 ({"x": 1}) is neither a value nor a {name, value} object' in problem.message


def test_reading_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    description = "cotton " * 1_500  # 10 KB a row, 20 MB in all
    with path.open("w", encoding="utf-8") as f:
        f.write("id,title,description\n")
        for number in range(2_000):
            f.write(f"{number},Shirt {number},{description}\n")
    tracemalloc.start()
    try:
        count = sum(1 for item in read_products(path) if isinstance(item, Product))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 2_000
    assert peak < 3_000_000, f"peak {peak:,} bytes: the file is being held in memory"


# -- folders ----------------------------------------------------------------------------------


def make_folder(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really an image")  # the reader does not open images
    return root


def test_folder_lists_images_sorted_recursive_without_hidden(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "shop", [
        "b.JPG", "a.png", "shoes/c.webp", "shoes/.d.jpg", ".hidden/e.jpg", "notes.txt", "x.TIFF", "y.jpeg", "z.avif",
    ])
    products, problems = split(read_folder(folder))
    assert problems == []
    assert [p.id for p in products] == ["a.png", "b.JPG", "shoes/c.webp", "x.TIFF", "y.jpeg", "z.avif"]
    assert products[2].image == str(folder / "shoes" / "c.webp")
    assert [p.row for p in products] == [1, 2, 3, 4, 5, 6]
    assert all(p.source == str(folder) and p.title == "" for p in products)


def test_jpeg_photos_saved_as_jfif_or_jpe_are_products_of_the_folder(tmp_path: Path) -> None:
    """Chrome and Edge on Windows save JPEGs as .jfif; .jpe and .jif are older JPEG names. They were not listed, and
    a products row naming one matched no image (a Windows shop audit)."""
    from tagkit.image import load_image

    photo = (Path(__file__).resolve().parent.parent / "examples" / "demo" / "new" / "IMG_4116.jpg").read_bytes()
    folder = tmp_path / "shop"
    folder.mkdir()
    for name in ("a.jfif", "b.JPE", "c.jif", "d.jpg"):
        (folder / name).write_bytes(photo)
    products, problems = split(read_folder(folder))
    assert problems == []
    assert [p.id for p in products] == ["a.jfif", "b.JPE", "c.jif", "d.jpg"]
    assert all(load_image(p.image or "").size == load_image(str(folder / "d.jpg")).size for p in products)
    rows = write(tmp_path, "products.csv", "id,title,image\nj1,Backpack,a.jfif\nj2,Mug,b.JPE\n")
    products, problems = split(read_folder(folder, products=rows))
    assert not [p for p in problems if p.skipped]
    assert {p.id: Path(p.image or "").name for p in products if p.title} == {"j1": "a.jfif", "j2": "b.JPE"}


def test_the_windows_system_folders_of_a_usb_stick_are_not_products(tmp_path: Path) -> None:
    """A photo folder copied from a Windows USB stick: the photos in its recycle bin became products (an audit)."""
    folder = make_folder(tmp_path / "usb", ["a.jpg", "$RECYCLE.BIN/S-1-5-21/$RAB12.jpg", "$Recycle.Bin/b.jpg",
                                            "System Volume Information/c.jpg", "RECYCLER/d.jpg", "shoes/e.jpg"])
    products, problems = split(read_folder(folder))
    assert problems == []
    assert [p.id for p in products] == ["a.jpg", "shoes/e.jpg"]


def test_folder_with_products_file_joins_by_image_and_id(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "shop", ["img/1.jpg", "img/2.jpg", "3.png", "4.jpg"])
    products_file = write(tmp_path, "products.csv", (
        "id,title,image,category\n"
        "p1,Shirt,img/1.jpg,Men\n"       # image path relative to the folder
        "p2,Cap,elsewhere/2.jpg,Men\n"   # only the file name matches
        "3,Hat,,Women\n"                 # id = file name without extension
        "p9,Ghost,img/9.jpg,Men\n"       # nothing matches
    ))
    items = list(read_folder(folder, products=products_file))
    products, problems = split(items)
    by_image = {Path(p.image).relative_to(folder).as_posix(): p for p in products}
    assert sorted(by_image) == ["3.png", "4.jpg", "img/1.jpg", "img/2.jpg"]
    assert (by_image["img/1.jpg"].id, by_image["img/1.jpg"].title) == ("p1", "Shirt")
    assert (by_image["img/2.jpg"].id, by_image["img/2.jpg"].category) == ("p2", ("Men",))
    assert (by_image["3.png"].id, by_image["3.png"].title) == ("3", "Hat")
    assert (by_image["4.jpg"].id, by_image["4.jpg"].title) == ("4.jpg", "")
    ghost = only(problems, skipped=True)
    assert (ghost.file, ghost.row) == (str(products_file), 5)
    assert "no image in" in ghost.message and "'p9'" in ghost.message
    assert "1 of 4 images have no row" in only(problems, skipped=False).message


def test_an_id_in_persian_digits_joins_the_photo_named_in_latin_digits(tmp_path: Path) -> None:
    """A Persian shop's sheet has ids typed in Persian digits (۱۰۰۱), its camera names photos 1001.jpg: no row
    matched, silently (a shop audit). The product keeps the id as the sheet writes it."""
    folder = make_folder(tmp_path / "shop", ["1001.jpg", "1002.jpg", "۱۰۰۳.jpg"])
    products_file = write(tmp_path, "products.csv", "شناسه,نام کالا\n۱۰۰۱,کیف پول\n1003,کلاه\n")
    mapping = Mapping(id=("شناسه",), title=("نام کالا",))
    products, problems = split(read_folder(folder, products=products_file, mapping=mapping))
    joined = {Path(p.image).name: (p.id, p.title) for p in products if p.title}
    assert joined == {"1001.jpg": ("۱۰۰۱", "کیف پول"), "۱۰۰۳.jpg": ("1003", "کلاه")}
    assert not [p for p in problems if p.skipped]


def test_fashion_sample_folder_with_its_styles(fashion_sample: Path) -> None:
    mapping = load_config(EXAMPLES / "fashion.yaml").mapping
    products, problems = split(read_folder(fashion_sample, products=fashion_sample / "styles.csv",
                                           mapping=mapping))
    assert problems == []
    assert len(products) == 300
    assert all(p.title and len(p.category) == 3 for p in products)
    assert all(Path(p.image).name == f"{p.id}.jpg" for p in products)
    # the images folder itself, with the products file outside it: joined by the path's tail
    products, problems = split(read_folder(fashion_sample / "images", products=fashion_sample / "styles.csv",
                                           mapping=mapping))
    assert problems == [] and len(products) == 300 and all(p.title for p in products)


def test_read_input_dispatches(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "shop", ["a.jpg"])
    csv_path = write(tmp_path, "p.csv", "id,title\n1,Shirt\n")
    assert [p.id for p in read_input(folder)] == ["a.jpg"]
    assert [p.id for p in read_input(csv_path)] == ["1"]
    with pytest.raises(FileNotFoundError):
        read_input(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="goes with a folder"):
        read_input(csv_path, products=csv_path)


def test_attribute_cell_in_csv_splits_at_the_tag_separator(tmp_path: Path) -> None:
    text = "id,title,colour\n1,Shirt,Red | Blue\n2,Cap,n/a\n3,Hat,Green;Grey\n"
    mapping = Mapping(attributes={"color": ("colour",)})
    products, problems = read(write(tmp_path, "p.csv", text), mapping)
    assert problems == []
    assert [p.tags for p in products] == [
        (Tag("color", "Red"), Tag("color", "Blue")), (), (Tag("color", "Green;Grey"),)]
    products, _ = read(write(tmp_path, "p.csv", text), mapping.with_overrides(["tag_separator=;"]))
    assert products[2].tags == (Tag("color", "Green"), Tag("color", "Grey"))


def test_json_records_need_not_share_keys(tmp_path: Path) -> None:
    lines = [{"id": "1", "title": "Shirt"}, {"id": "2", "title": "Cap", "image": "cap.jpg", "price": 3}]
    path = write(tmp_path, "p.jsonl", "\n".join(json.dumps(line) for line in lines))
    products, problems = read(path)
    assert problems == []
    assert products[1].image == str(tmp_path / "cap.jpg")
    assert products[1].extra == {"price": "3"}


def test_json_without_title_or_image_says_what_to_map(tmp_path: Path) -> None:
    products, problems = read(write(tmp_path, "p.jsonl", '{"sku": "A7", "name": "Shirt"}\n'))
    assert [p.id for p in products] == [f"{tmp_path.name}/p.jsonl:1"]
    assert "no title, description or image column in the first record" in warnings(problems)[0].message


# -- a Persian team's own export ----------------------------------------------------------------


PERSIAN_MAP = ["id=شناسه", "title=عنوان", "category=دسته‌بندی", "tags=برچسب‌ها"]


def test_persian_column_names_match_however_they_are_spelt(tmp_path: Path) -> None:
    """Arabic ي/ك, a space for the half-space, another case: the same column (labels were silently lost)."""
    text = "شناسه,عنوان,دسته‌بندي,برچسب ها\n1,کیف پول چرمی,کیف > کیف پول,رنگ: قهوه‌ای\n"
    products, problems = read(write(tmp_path, "p.csv", text), Mapping().with_overrides(PERSIAN_MAP))
    assert warnings(problems) == []
    assert products[0].category == ("کیف", "کیف پول") and products[0].tags == (Tag("رنگ", "قهوه‌ای"),)


def test_messages_show_the_half_space_as_it_is(tmp_path: Path) -> None:
    _, problems = read(write(tmp_path, "p.csv", "شناسه,عنوان\n1,کیف\n"), Mapping().with_overrides(PERSIAN_MAP))
    message = str(only(warnings(problems), field="دسته‌بندی"))
    assert "'دسته\u200cبندی'" in message and "\\u200c" not in message


def test_label_columns_a_new_products_file_lacks_are_only_a_note_when_labels_are_not_wanted(tmp_path: Path) -> None:
    """`predict` reads new products with the team's tagkit.yaml, which maps labels too: exit 3 every night."""
    path = write(tmp_path, "new.csv", "شناسه,عنوان\n1,کیف پول\n")
    mapping = Mapping().with_overrides(PERSIAN_MAP)
    products, problems = split(read_input(path, mapping=mapping, labels=False))
    assert [p.title for p in products] == ["کیف پول"] and warnings(problems) == []
    assert any("برچسب‌ها" in p.message for p in problems), "still said, as a note"
    assert len(warnings(read(path, mapping)[1])) == 2, "where labels are wanted (train, eval) they are problems"
    levels = Mapping().with_overrides(["id=شناسه", "title=عنوان", "category=گروه,زیرگروه,نوع"])  # several columns
    _, problems = split(read_input(path, mapping=levels, labels=False))
    assert warnings(problems) == [] and any("category levels" in p.message for p in problems)


def test_a_file_with_nothing_to_place_products_by_is_not_read(tmp_path: Path) -> None:
    """A forgotten mapping used to store every row as an empty product (ids and extra data only)."""
    products, problems = read(write(tmp_path, "p.csv", "شناسه,عنوان\n1,کیف\n2,کفش\n"))
    assert products == []
    assert "nothing was read" in only(warnings(problems)).message


def test_the_header_line_again_is_not_a_product(tmp_path: Path) -> None:
    """Two exports joined one after the other: the second header became a labelled training product."""
    text = "\ufeffid,title,category\n1,Red shirt,Men\n\ufeffid,title,category\n2,Blue cap,Men\n"
    products, problems = read(write(tmp_path, "p.csv", text))
    assert [p.id for p in products] == ["1", "2"]
    assert "header line again" in only(problems, row=3).message and warnings(problems) == []


def test_persian_unknown_is_no_tag_by_default(tmp_path: Path) -> None:
    """`برند: نامشخص` ("brand: not specified") was learnt and predicted for most Torob products."""
    text = "id,title,tags\n1,کیف پول,برند: نامشخص|رنگ: مشکی|جنس: نامعلوم\n"
    products, _ = read(write(tmp_path, "p.csv", text))
    assert products[0].tags == (Tag("رنگ", "مشکی"),)


def test_tags_written_another_way_are_pointed_out_once(tmp_path: Path) -> None:
    """`;` between tags, or `name=value`: read as one giant tag or a nameless value, without a word."""
    text = ("id,title,tags\n1,کیف,طرح: ساده; برند: کوتون\n2,کفش,رنگ: مشکی؛ جنس: چرم\n3,شال,رنگ=اناری\n"
            "4,کلاه,رنگ=آبی|جنس: نخ\n5,ساعت,برند: Casio|رنگ: مشکی\n")
    products, problems = read(write(tmp_path, "p.csv", text))
    assert len(products) == 5 and warnings(problems) == []
    several = only(problems, row=2)
    assert "more than one `name: value`" in several.message and "tag_separator" in several.message
    assert "without a name" in only(problems, row=4).message
    assert len(problems) == 2, "once per file"


@pytest.mark.parametrize("image", ["C:\\Users\\shop\\Pictures\\x.jpg", "\\\\SHOPPC\\Photos\\x.jpg",
                                   "file:///C:/Users/shop/Pictures/x.jpg", "file://SHOPPC/Photos/x.jpg"])
def test_a_windows_path_says_so(tmp_path: Path, image: str) -> None:
    """A drive letter, and (a Windows shop audit) a network share or a file URL of either, which said only "file
    not found"."""
    products, problems = read(write(tmp_path, "p.csv", f"id,title,image\n1,کیف,{image}\n"))
    assert products[0].image is None
    assert "is a Windows path" in only(warnings(problems)).message


def test_an_image_named_as_windows_sees_names_is_read_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """A CSV written on Windows names `img_01.jpg` for IMG_01.JPG, `b.jpg.` for b.jpg (Windows drops the dot): each
    was "file not found" (a Windows shop audit). The one file that matches but for case is read, with a note; of
    several, none is, and the note names them. A folder is listed once, and only for a path not there."""
    for name in ("IMG_01.JPG", "b.jpg", "Shoes/A.jpg", "c.jpg", "C.JPG", "exact.jpg"):
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name).write_bytes(b"a photo")
    listed: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr("tagkit.catalogue.os.listdir", lambda path: listed.append(path) or listdir(path))
    path = write(tmp_path, "p.csv", "id,title,image\r\n1,a,images\\img_01.jpg\r\n2,b,images\\b.jpg.\r\n"
                 "3,c,images\\shoes\\a.JPG\r\n4,d,images/C.Jpg\r\n5,e,images/exact.jpg\r\n6,f,images/none.jpg\r\n")
    products, problems = read(path)
    images = tmp_path / "images"
    assert [p.image for p in products] == [str(images / "IMG_01.JPG"), str(images / "b.jpg"),
                                           str(images / "Shoes" / "A.jpg"), str(images / "C.Jpg"),
                                           str(images / "exact.jpg"), str(images / "none.jpg")]
    assert all(p.info and p.field == "image" for p in problems)
    said = {p.row: " ".join(p.message.split()) for p in problems}
    assert said[2] == (f"image 'images/img_01.jpg' is not there as written; 'IMG_01.JPG' in '{images}', the one file "
                       "with that name but for case or a dot or space at its end (as Windows sees names), is read")
    assert "'b.jpg' in" in said[3] and f"'A.jpg' in '{images / 'Shoes'}'" in said[4]
    assert said[5].endswith("2 files in '" + str(images) + "' have that name but for case or a dot or space at its "
                            "end, as Windows sees names: 'C.JPG', 'c.jpg'; write the one meant")
    assert sorted(said) == [2, 3, 4, 5]
    assert sorted(listed) == [str(images), str(images / "Shoes")]


def test_a_folders_products_file_joins_a_photo_named_as_windows_sees_names(tmp_path: Path) -> None:
    """With a folder of photos and --products, a row naming `img_01.jpg` for IMG_01.JPG was left out: "no image in
    the folder matches this row" (a Windows shop audit)."""
    folder = make_folder(tmp_path / "photos", ["IMG_01.JPG", "b.jpg", "c.jpg", "C.jpg"])
    rows = write(tmp_path, "products.csv", "id,title,image\r\nk1,Bag,new\\img_01.jpg\r\nk2,Mug,B.jpg.\r\n"
                 "k3,Hat,x/c.JPG\r\n")
    products, problems = split(read_folder(folder, products=rows))
    assert {p.id: Path(p.image or "").name for p in products if p.title} == {"k1": "IMG_01.JPG", "k2": "b.jpg"}
    assert [(p.row, p.skipped) for p in problems if not p.info] == [(4, True)]  # two photos: c.jpg and C.jpg


def test_a_colon_between_digits_is_part_of_the_value(tmp_path: Path) -> None:
    """Times, ratios and sizes (`12:30`, `16:9`, `۱۲:۳۰`) are values, not `name: value`: `16:9` used to be read as
    the tag `16: 9`, and a plain value stored as `12:30` came back from the database as `12: 30`."""
    text = "id,title,tags\n1,Watch,12:30 | aspect ratio: 16:9 | ۱۲:۳۰ | size:42 | 42:XL\n"
    products, problems = read(write(tmp_path, "p.csv", text))
    assert problems == []
    assert products[0].tags == (Tag("", "12:30"), Tag("aspect ratio", "16:9"), Tag("", "۱۲:۳۰"), Tag("size", "42"),
                                Tag("42", "XL"))
    assert all(Tag.parse(str(tag)) == tag for tag in products[0].tags)  # how tags are stored and read back


def test_json_numbers_too_long_for_python_and_escaped_nuls_cost_nothing_else(tmp_path: Path) -> None:
    """A number of 5,000 digits in one JSON line stopped the whole file with a traceback (Python's 4,300-digit
    limit); NULs written `\\u0000` went into ids and titles, unreported, and on into the exported CSV."""
    big = "9" * 5000
    text = ('{"id": "g1", "title": "good"}\n{"id": ' + big + ', "title": "x", "n": 1' + big + '}\n'
            '{"id": "n\\u0000id", "title": "Blue\\u0000 jeans"}\n')
    for name, content in (("p.jsonl", text), ("p.json", "[" + ",".join(text.strip().split("\n")) + "]")):
        products, problems = read(write(tmp_path, name, content), Mapping())
        assert [(p.id, p.title) for p in products] == [("g1", "good"), (big, "x"), ("nid", "Blue jeans")], name
        assert [p.message for p in problems if "NUL" in p.message] == [
            "2 NUL character(s) (written \\u0000) removed" + ("" if name.endswith("l") else " from the file")]
    products, _ = read(write(tmp_path, "cell.csv", f'id,title,tags\na,t,"[{big}]"\n'))  # a JSON list in a cell
    assert [(p.id, p.title) for p in products] == [("a", "t")]
    # numbers a float does not hold as written: `1e400` and `2e400` were both the id `inf`, one replacing the other
    products, _ = read(write(tmp_path, "f.jsonl", "".join(f'{{"id": {n}, "title": "t"}}\n' for n in (
        "1e400", "2e400", "1.0000000000000000000001", "1", "12.5"))))
    assert [p.id for p in products] == ["1e400", "2e400", "1.0000000000000000000001", "1", "12.5"]


def test_text_a_mac_wrote_decomposed_is_read_as_the_same_text(tmp_path: Path) -> None:
    """Every other row of the demo catalogue decomposed (NFD), as macOS writes text: the same category, tag and id
    were two (9 categories and 39 tags learnt instead of 8 and 37; `آ` lost its madda in the tokens; a Mac audit).
    Photo names are left as written: the file system's form is matched either way."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "train.csv"
    lines = demo.read_text(encoding="utf-8").splitlines(keepends=True)
    mixed = lines[0] + "".join(unicodedata.normalize("NFD", line) if i % 2 else line for i, line in
                               enumerate(lines[1:]))
    assert mixed != "".join(lines)
    (tmp_path / "images").symlink_to(demo.parent / "images")
    plain, _ = read(demo)
    read_mixed, problems = read(write(tmp_path, "train.csv", mixed))
    assert warnings(problems) == []
    assert [(p.id, p.title, p.category, p.tags) for p in read_mixed] == [(p.id, p.title, p.category, p.tags)
                                                                         for p in plain]
    assert all(os.path.isfile(p.image) for p in read_mixed if p.image)
