"""Taxonomies: the YAML format, canonical tags, stable ids in the database, spelling-variant suggestions, the CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagkit.cli import main
from tagkit.product import Product, Tag
from tagkit.store import Store
from tagkit.taxonomy import (
    TaxonomyError,
    add_synonym,
    dump_taxonomy,
    find_taxonomy,
    import_taxonomy,
    load_taxonomy,
    parse_taxonomy,
    shipped_taxonomies,
    stored_taxonomy,
    taxonomy_ids,
)
from tagkit.vocabulary import fold_key, standard_spelling, suggest

REPO = Path(__file__).resolve().parent.parent
ZWNJ = "\u200c"

SMALL = f"""
name: test
language: fa
categories:
  مد و پوشاک:
    کفش:
    پیراهن:
attributes:
  - name: ویژگی{ZWNJ}ها
    multi_valued: true
    open: true
    values: [اورجینال, {{value: وارداتی, synonyms: ["توصیفگرها: وارداتی"]}}]
  - name: رنگ
    values:
      - مشکی
      - value: قهوه{ZWNJ}ای
        synonyms: [قهوه ای سوخته]
  - name: color
    synonyms: [colour]
    values: [{{value: Navy Blue, synonyms: [Navy]}}, Black]
"""


def small(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_canonical_tags_fold_spellings_and_follow_synonyms(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(small(tmp_path))
    assert taxonomy.canonical(Tag("ویژگی ها", "اورجینال")) == Tag(f"ویژگی{ZWNJ}ها", "اورجینال")
    assert taxonomy.canonical(Tag("رنگ", "قهوه ای")) == Tag("رنگ", f"قهوه{ZWNJ}ای")  # space for half-space
    assert taxonomy.canonical(Tag("رنگ", "قهوه اي")) == Tag("رنگ", f"قهوه{ZWNJ}ای")  # Arabic ي
    assert taxonomy.canonical(Tag("رنگ", "قهوه ای سوخته")) == Tag("رنگ", f"قهوه{ZWNJ}ای")  # a synonym
    assert taxonomy.canonical(Tag("Colour", "navy")) == Tag("color", "Navy Blue")
    assert taxonomy.canonical(Tag("توصیفگرها", "وارداتی")) == Tag(f"ویژگی{ZWNJ}ها", "وارداتی")  # a whole-tag alias
    assert taxonomy.canonical(Tag("برند", "كوتون")) == Tag("برند", "کوتون")  # unknown: only normalised
    assert not taxonomy.known(taxonomy.canonical(Tag("برند", "کوتون")))
    assert taxonomy.canonical_category(["مد و پوشاک", "كفش"]) == ("مد و پوشاک", "کفش")
    assert taxonomy.canonical_category(["پیراهن"]) == ("مد و پوشاک", "پیراهن")  # the leaf's name alone


def test_constrain_makes_predictions_valid(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(small(tmp_path))
    predicted = [(Tag("رنگ", "مشکی"), 0.6), (Tag("رنگ", "قهوه ای"), 0.9), (Tag("رنگ", "بنفش"), 0.95),
                 (Tag("ویژگی ها", "اورجینال"), 0.8), (Tag("ویژگی‌ها", "دست دوز"), 0.7), (Tag("color", "navy"), 0.5),
                 (Tag("color", "Navy Blue"), 0.4), (Tag("سایز", "XL"), 0.9)]
    assert taxonomy.constrain(predicted) == [
        (Tag("رنگ", f"قهوه{ZWNJ}ای"), 0.9),  # one value for a single-valued attribute; بنفش is not allowed
        (Tag(f"ویژگی{ZWNJ}ها", "اورجینال"), 0.8),
        (Tag(f"ویژگی{ZWNJ}ها", "دست دوز"), 0.7),  # an open attribute takes new values
        (Tag("color", "Navy Blue"), 0.5),  # once, with its best score
    ]  # سایز is not an attribute of the taxonomy


def test_merged_tags_keep_attributes_the_taxonomy_does_not_know(tmp_path: Path) -> None:
    from tagkit.extract import merge_tags

    taxonomy = load_taxonomy(small(tmp_path))
    model = [(Tag("رنگ", "مشکی"), 0.6), (Tag("سایز", "XL"), 0.9), (Tag("برند", "کوتون"), 0.5)]
    extracted = [(Tag("رنگ", "قهوه ای"), 0.8), (Tag("رنگ", "بنفش"), 0.95), (Tag("سایز", "L"), 0.7),
                 (Tag("سایز", "XL"), 0.4), (Tag("برند", "ال سی وایکیکی"), 0.6)]
    assert merge_tags(model, extracted, taxonomy=taxonomy, single_valued={"سایز"}) == [
        (Tag("سایز", "XL"), 0.9),  # not in the taxonomy: passes through; one value (single-valued), its best score
        (Tag("رنگ", f"قهوه{ZWNJ}ای"), 0.8),  # canonical; بنفش is not allowed; one value for رنگ
        (Tag("برند", "ال سی وایکیکی"), 0.6),  # not in the taxonomy, multi-valued: both values
        (Tag("برند", "کوتون"), 0.5),
    ]
    assert taxonomy.constrain(model + extracted) == [(Tag("رنگ", f"قهوه{ZWNJ}ای"), 0.8)]  # unknown: dropped
    assert merge_tags(model, extracted, single_valued={"رنگ"})[:3] == [
        (Tag("رنگ", "بنفش"), 0.95), (Tag("سایز", "XL"), 0.9), (Tag("سایز", "L"), 0.7)]  # no taxonomy


def test_a_whole_tag_synonym_holds_for_every_name_of_its_attribute(tmp_path: Path) -> None:
    """`فام: Black` -> `color: Black`, where فام is another name of رنگ: `رنگ: Black` used to stay as it was."""
    text = ("attributes:\n  - {name: color, values: [{value: Black, synonyms: ['فام: Black']}]}\n"
            "  - {name: رنگ, synonyms: [فام], open: true, values: [مشکی]}\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    for name in ("فام", "رنگ"):
        assert taxonomy.canonical(Tag(name, "black")) == Tag("color", "Black")
    assert taxonomy.canonical(Tag("رنگ", "مشکی")) == Tag("رنگ", "مشکی")
    itself = "attributes:\n  - {name: رنگ, synonyms: [فام], values: [{value: مشکی, synonyms: ['فام: مشکی']}]}\n"
    assert load_taxonomy(small(tmp_path, itself)).canonical(Tag("فام", "مشکی")) == Tag("رنگ", "مشکی")


def test_one_spelling_per_label_undoes_spelling_only() -> None:
    """Half-space, Arabic letters, case and digits are spelling; signs and units are not (+1.5 is not -1.5)."""
    from tagkit.vocabulary import Spellings

    tags = [Tag("lens", v) for v in ("+1.5", "+1.5", "-1.5", "10%", "10", "10")] + [Tag("رنگ", "سرمه‌ای")] * 2
    spelt = Spellings([("شلوار جین",), ("شلوار جین",), ("شلوار‌جين",)], [*tags, Tag("رنگ", "سرمه اي")])
    assert spelt.path(("شلوار‌جين",)) == ("شلوار جین",)
    assert spelt.tag(Tag("رنگ", "سرمه اي")) == Tag("رنگ", "سرمه‌ای") and spelt.tag(Tag("LENS", "+1.5")) == tags[0]
    assert len({spelt.tag(t) for t in tags}) == 5


def test_a_value_written_with_a_colon_and_space_is_a_value(tmp_path: Path) -> None:
    """A value's own name holding `: ` (`برتر: 26 سانتی متر`, a size in the shipped vocabulary) was read as a
    whole-tag synonym too: a tag `برتر: 26 سانتی متر` of another attribute became that size, and `suggest` listed
    it. Only a synonym can stand for a whole tag."""
    text = ("attributes:\n  - name: سایز\n    values: ['برتر: 26 سانتی متر',\n"
            "      {value: XL, synonyms: ['size: X-Large']}]\n  - name: size\n    values: [L]\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    assert taxonomy.known(Tag("سایز", "برتر: 26 سانتی متر"))
    assert taxonomy.canonical(Tag("سایز", "برتر: 26 سانتی متر")) == Tag("سایز", "برتر: 26 سانتی متر")
    assert taxonomy.canonical(Tag("برتر", "26 سانتی متر")) == Tag("برتر", "26 سانتی متر")  # not the size
    assert taxonomy.canonical(Tag("size", "X-Large")) == Tag("سایز", "XL")  # a synonym still can


def test_numbers_are_read_as_written(tmp_path: Path) -> None:
    """YAML reads 1.10 as 1.1, 010 as 8 and 12:30 as 750: a size taxonomy silently lost its values."""
    text = ("attributes:\n  - name: size\n    values: [42, 1.10, 010, 12:30, 1_000, 2024-01-01, "
            "{value: 38, synonyms: [7.50]}]\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    size = taxonomy.attribute("size")
    assert [v.name for v in size.values] == ["42", "1.10", "010", "12:30", "1_000", "2024-01-01", "38"]
    assert size.values[-1].synonyms == ("7.50",) and taxonomy.known(Tag("size", "1.10"))
    again = load_taxonomy(small(tmp_path / "..", dump_taxonomy(taxonomy)))
    assert [v.name for v in again.attribute("size").values] == [v.name for v in size.values]


def test_yes_and_no_are_values_as_written_and_flags_where_a_flag_is_asked(tmp_path: Path) -> None:
    """YAML reads `yes`, `No` and `on` as true/false: the values were refused as `True`, a word never written."""
    text = ("attributes:\n  - name: waterproof\n    open: yes\n    values: [yes, No, {value: on, synonyms: [ON]}]\n"
            "  - {name: size, multi_valued: off, values: [S, M, Y, N]}\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    waterproof, size = taxonomy.attribute("waterproof"), taxonomy.attribute("size")
    assert [v.name for v in waterproof.values] == ["yes", "No", "on"] and waterproof.open
    assert waterproof.values[-1].synonyms == ("ON",) and not size.multi_valued and not size.open
    again = load_taxonomy(small(tmp_path / "..", dump_taxonomy(taxonomy)))
    assert [v.name for v in again.attribute("waterproof").values] == ["yes", "No", "on"]
    with pytest.raises(TaxonomyError, match="open: expected true or false, found 'maybe'"):
        load_taxonomy(small(tmp_path, "attributes:\n  - {name: x, open: maybe, values: [a]}\n"))


def test_dump_reads_back_the_same(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(small(tmp_path))
    text = dump_taxonomy(taxonomy, "a header")
    again = load_taxonomy(small(tmp_path / "..", text))
    assert dump_taxonomy(again, "a header") == text
    assert again.categories == [("مد و پوشاک",), ("مد و پوشاک", "کفش"), ("مد و پوشاک", "پیراهن")]
    assert again.attribute("colour").values[0].synonyms == ("Navy",)


@pytest.mark.parametrize(("text", "message"), [
    ("attributes:\n  - {name: رنگ, open: true}\n  - {name: رنگ, open: true}\n", "listed twice"),
    ("attributes:\n  - {name: رنگ, open: true}\n  - {name: color, open: true, synonyms: [رنگ]}\n",
     "is already attribute 'رنگ'"),
    # values dedented under `values:` become attributes of their own, without values (all their tags dropped)
    ("attributes:\n  - name: جنس\n    values:\n  - نخ\n", r"attributes\[0\] \(جنس\): no values"),
    ("attributes:\n  - {name: رنگ, values: [قهوه ای, قهوه‌ای]}\n", "is already value"),
    ("attributes:\n  - {name: رنگ, multi: true}\n", "unknown key 'multi'"),
    ("attributes:\n  - {name: رنگ, open: yes please}\n", "expected true or false"),
    ("categories: {A: {B: }}\ncategory_synonyms: {X: A > C}\n", "not a category"),
    ("colours: []\n", "unknown key 'colours'"),
    ("categories: {A: {B: }, C: }\ncategory_synonyms: {C: A > B}\n", "is a category of this taxonomy itself"),
    ("attributes:\n  - {name: color, values: [Red]}\n  - {name: usage, values: [{value: Travel, synonyms: "
     "['color: Red']}]}\n", "is a value of this taxonomy itself"),
    ("attributes: [{name: رنگ, values: [{value: سفید, synonym: [x]}]}]\n", "unknown key 'synonym'"),
    ("attributes: [{name: رنگ, values: [{value: مشکی, synonyms: ['ویژگی‌ها: تیره']}, "
     "{value: سفید, synonyms: ['ویژگی ها: تیره']}]}]\n", "is already a synonym of 'رنگ: مشکی': a tag means one value"),
])
def test_bad_taxonomies_are_refused_with_the_entry_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message) as error:
        load_taxonomy(small(tmp_path, text))
    assert "taxonomy.yaml" in str(error.value)


def test_reimport_keeps_ids_and_aliases_merged_entries(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        assert import_taxonomy(store, load_taxonomy(small(tmp_path))).added == 12
        ids = taxonomy_ids(store)
        again = import_taxonomy(store, load_taxonomy(small(tmp_path)))
        assert (again.added, again.unchanged, again.updated) == (0, 12, 0)
        assert taxonomy_ids(store) == ids
        # Black becomes a synonym of Navy Blue (merged), a category and a value are added, مشکی is dropped
        edited = SMALL.replace("[Navy]}, Black]", "[Navy, Black]}, Navy Green]").replace(
            "      - مشکی\n", "").replace("    کفش:\n", "    کفش:\n    کیف:\n")
        counts = import_taxonomy(store, parse_taxonomy(__import__("yaml").safe_load(edited)))
        assert (counts.added, counts.aliased, counts.removed, counts.renamed) == (2, 1, 1, 0)
        # an entry moved down by one added above it is unchanged (a curator audit: "updated 7,095" for one line)
        assert (counts.updated, counts.unchanged) == (1, 9), "Navy Blue's new synonym; the rest moved, unchanged"
        new_ids = taxonomy_ids(store)
        assert {k: v for k, v in new_ids.items() if k in ids} == {k: v for k, v in ids.items() if k in new_ids}
        alias = store.db.execute("select canonical_id from taxonomy where id = ?",
                                 [ids[("value", "color", "Black")]]).fetchone()[0]
        assert alias == new_ids[("value", "color", "Navy Blue")]
        loaded = stored_taxonomy(store)
        assert loaded.canonical(Tag("color", "black")) == Tag("color", "Navy Blue")
        assert loaded.categories[:3] == [("مد و پوشاک",), ("مد و پوشاک", "کفش"), ("مد و پوشاک", "کیف")]


def test_renamed_entries_keep_their_ids_and_so_do_the_entries_under_them(tmp_path: Path) -> None:
    """A category, an attribute and a value renamed with the old name kept as a synonym: the same rows, so a shop
    system that files products by taxonomy id is not broken by a rename; the entries under them keep theirs too."""
    text = ("categories:\n  Apparel:\n    Bottomwear:\n      Jeans:\n      Shorts:\n    Topwear:\n"
            "attributes:\n  - {name: colour, values: [Black, Dark Blue, Red]}\n")
    renamed = ("categories:\n  Apparel:\n    Lowerwear:\n      Jeans:\n      Shorts:\n    Topwear:\n"
               "category_synonyms:\n  Apparel > Bottomwear: Apparel > Lowerwear\n"
               "attributes:\n  - {name: color, synonyms: [colour], values: [Black, "
               "{value: Navy Blue, synonyms: [Dark Blue]}, Red]}\n")
    with Store(tmp_path / "t.db") as store:
        import_taxonomy(store, load_taxonomy(small(tmp_path, text)))
        before = taxonomy_ids(store)
        counts = import_taxonomy(store, load_taxonomy(small(tmp_path, renamed)))
        assert (counts.added, counts.renamed, counts.aliased, counts.removed) == (0, 3, 0, 0)
        after = taxonomy_ids(store)
        assert after[("category", "Apparel", "Lowerwear")] == before[("category", "Apparel", "Bottomwear")]
        assert after[("category", "Apparel", "Lowerwear", "Jeans")] == before[("category", "Apparel", "Bottomwear",
                                                                                "Jeans")]
        assert after[("attribute", "color")] == before[("attribute", "colour")]
        assert after[("value", "color", "Red")] == before[("value", "colour", "Red")]
        assert after[("value", "color", "Navy Blue")] == before[("value", "colour", "Dark Blue")]
        assert sorted(after.values()) == sorted(before.values())
        assert store.db.execute("select count(*) from taxonomy").fetchone()[0] == len(before)  # no alias rows
        assert import_taxonomy(store, load_taxonomy(small(tmp_path, renamed))).unchanged == len(before)
        loaded = stored_taxonomy(store)
    assert loaded.canonical_category(("Apparel", "Bottomwear", "Shorts")) == ("Apparel", "Lowerwear", "Shorts")
    assert loaded.canonical(Tag("colour", "dark blue")) == Tag("color", "Navy Blue")


def test_map_adds_synonyms_that_later_imports_follow(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        import_taxonomy(store, load_taxonomy(small(tmp_path)))
        assert add_synonym(store, "قهوه ای تیره", f"رنگ: قهوه{ZWNJ}ای") == f"قهوه ای تیره -> رنگ: قهوه{ZWNJ}ای"
        add_synonym(store, "شیک: اورجینال", "ویژگی ها: اورجینال")
        add_synonym(store, "فام", "رنگ")
        add_synonym(store, "پوشاک > کفش", "مد و پوشاک > کفش")
        with pytest.raises(TaxonomyError, match="not a value"):
            add_synonym(store, "x", "رنگ: بنفش")
        loaded = stored_taxonomy(store)
    assert loaded.canonical(Tag("فام", "قهوه‌ای تیره")) == Tag("رنگ", f"قهوه{ZWNJ}ای")
    assert loaded.canonical(Tag("شیک", "اورجینال")) == Tag(f"ویژگی{ZWNJ}ها", "اورجینال")
    assert loaded.canonical_category(["پوشاک", "کفش"]) == ("مد و پوشاک", "کفش")


def test_fold_keys_and_standard_spelling() -> None:
    assert fold_key("ویژگی ها") == fold_key("ویژگی‌ها") == fold_key("ويژگيها") == fold_key("ویژگی")
    assert fold_key("T-Shirts") == fold_key("tshirt") and fold_key("Dresses") == fold_key("dress")
    assert fold_key("سایز ۴۲") == fold_key("سایز 42") != fold_key("سایز 44")
    assert standard_spelling("قهوه ای") == f"قهوه{ZWNJ}ای"
    assert standard_spelling("ويژگي ها") == f"ویژگی{ZWNJ}ها"
    assert standard_spelling("دست دوز") == "دست دوز"
    # Latin letters typed inside a Persian word (a Torob attribute name); Latin words of their own stay apart
    assert fold_key("نوع آstین") == fold_key("نوع آستین")
    assert fold_key("عینک UV") != fold_key("عینک یو وی") and fold_key("کیف Puma") != fold_key("کیف پوما")
    # a letter that means a letter (V-neck, O-neck), capitals, codes and lists are not Persian words mistyped
    assert len({fold_key(v) for v in ("یقهVشکل", "یقهOشکل", "یقهUشکل", "یقهوشکل")}) == 4
    assert fold_key("کدC۱۲") != fold_key("کدK۱۲") and fold_key("مدلE۱") != fold_key("مدل۱")
    assert fold_key("۱۲V۲A") == fold_key("12V2A") and fold_key("S،M،L") == fold_key("S,M,L")
    assert fold_key("نوع آSTین") != fold_key("نوع آستین")


def torob_products(shared_data: Path) -> list[Product]:
    from tagkit.catalogue import read_input
    from tagkit.config import load_config

    mapping = load_config(REPO / "examples" / "torob.yaml").mapping
    return [r for r in read_input(shared_data / "torob_attributes" / "products.jsonl", mapping=mapping)
            if isinstance(r, Product)]


def test_suggest_finds_the_known_torob_duplicates(shared_data: Path) -> None:
    found = suggest(t for p in torob_products(shared_data) for t in p.tags)
    names = {s.canonical: s for s in found if s.kind == "attribute"}
    assert [t for t, _ in names[f"ویژگی{ZWNJ}ها"].variants] == ["ویژگی ها"]
    assert "half-space" in names[f"ویژگی{ZWNJ}ها"].reasons
    assert {t for t, _ in names["کاربرد"].variants} == {"کاربرد", "كاربرد"}  # Arabic ك
    assert {t for t, _ in names["منشأ"].variants} == {"منشأ", "منشا", "منشاء"}
    assert {t for t, _ in names["توصیفگرها"].variants} == {"توصیفگرها", "توصیفگر"}  # plural
    values = {(s.attribute, s.canonical): {t for t, _ in s.variants} for s in found if s.kind == "value"}
    assert values[("رنگ", f"سرمه{ZWNJ}ای")] == {"سرمه ای"}
    assert {"ال سی وایکیکی", "السی وایکیکی"} <= values[("برند", "ال سی وایکیکی")]
    assert values[("نوع کلی", "تیشرت")] == {"تیشرت", "تی شرت"}
    assert {"XL", "xl"} <= values[("سایز", "XL")]
    assert [t for t, _ in names["نوع آستین"].variants] == ["نوع آستین", "نوع آstین"]
    assert names["نوع آستین"].reasons == ["Latin letters in a Persian word"]


def test_shipped_taxonomies_are_what_the_tool_builds(shared_data: Path) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_taxonomy as tool
    finally:
        sys.path.remove(str(REPO / "tools"))
    products = torob_products(shared_data)
    built = tool.fa_fashion(products)
    shipped = load_taxonomy(REPO / "taxonomy" / "fa-fashion.yaml")
    assert dump_taxonomy(built) == dump_taxonomy(shipped)
    descriptors = shipped.attribute("توصیفگرها")
    assert descriptors is shipped.attribute("ویژگی ها") and descriptors.open and descriptors.multi_valued
    assert shipped.attribute("نوع آستین").multi_valued is False
    assert shipped.attribute("نوع آstین") is shipped.attribute("نوع آستین")
    assert not [a.name for a in shipped.attributes if re.search("[\u0600-\u06ff] [a-z]+ [\u0600-\u06ff]", a.name)]
    assert shipped.attribute("jens") is shipped.attribute("جنس") and shipped.attribute("tarh").name == "طرح"
    assert ("شلوار", "شلوار جین", "شلوار جین بگ") in shipped.categories
    # every raw Torob tag maps into the vocabulary, but those that are not values of their attribute (an audit)
    kept = tool.without_non_values(products)
    assert all(shipped.known(shipped.canonical(t)) for p in kept for t in p.tags)
    left_out = {t for p, q in zip(products, kept, strict=True) for t in set(p.tags) - set(q.tags)}
    assert Tag("رنگ", "هر رنگی") in left_out and Tag("جنسیت", "مخمل") in left_out
    assert not [t for t in left_out if shipped.value(shipped.attribute(t.name), t.value) is not None]  # not listed
    # other words and forms of one value are one value (an audit: مشکی 242 products, سیاه 41, Black 2, ...)
    for raw, value in ((Tag("رنگ", "سیاه"), "مشکی"), (Tag("رنگ", "Black"), "مشکی"), (Tag("جنسیت", "یونیسکس"),
                       "مردانه و زنانه"), (Tag("فصل", "تابستونی"), "تابستانی"), (Tag("برند", "Crocs"), "کراکس"),
                       (Tag("برند", "NIKE"), "نایک"), (Tag("برند", "نایکی"), "نایک")):
        assert shipped.canonical(raw) == Tag(raw.name, value), raw
    # the spelling a person chose is the one kept, not a rare one already in standard spelling (a re-audit:
    # `سرمه ای` 47 products, `NAVY BLUE` 2, became `NAVY BLUE`)
    assert shipped.canonical(Tag("رنگ", "سرمه ای")) == Tag("رنگ", "سرمه\u200cای")
    assert shipped.canonical(Tag("رنگ", "سیلور")) == Tag("رنگ", "نقره\u200cای")
    assert shipped.canonical(Tag("برند", "اسکوئدریا فراری")) != shipped.canonical(Tag("برند", "puma"))
    assert shipped.canonical(Tag("رنگ", "طوسی")) != shipped.canonical(Tag("رنگ", "خاکستری"))  # left apart
    # a brand was multi-valued only because products wrote it in both scripts
    assert shipped.attribute("برند").multi_valued is False
    assert shipped.attribute("کابرد") is shipped.attribute("کاربرد")  # a typo of a name
    assert ("کت و شلوار",) in shipped.categories and ("کت", "کت و شلوار") not in shipped.categories  # a set
    english = load_taxonomy(REPO / "taxonomy" / "en-fashion.yaml")
    assert english.canonical(Tag("color", "navy")) == Tag("color", "Navy Blue")
    assert ("Apparel", "Topwear", "Shirts") in english.categories
    assert not english.attribute("usage").multi_valued


def test_suggest_with_a_taxonomy_lists_only_the_spellings_it_does_not_map(tmp_path: Path) -> None:
    """An English team's tags: `color` and `COLOR` match `Color` already (case), `T Shirt` is a listed synonym;
    `--commands` used to print `map color Color` and `map 'Type: T Shirt' 'Type: T-Shirt'` too."""
    taxonomy = load_taxonomy(small(tmp_path, "attributes:\n  - {name: Color, values: [Red, Navy Blue]}\n"
                                   "  - {name: Type, values: [{value: T-Shirt, synonyms: [T Shirt]}, Jeans]}\n"))
    tags = [Tag(name, value) for name, value, n in (
        ("Color", "Red", 5), ("color", "Red", 3), ("COLOR", "red", 2), ("colors", "Navy Blue", 2),
        ("Type", "T-Shirt", 4), ("Type", "T Shirt", 3), ("Type", "t-shirt", 1), ("Type", "Tshirts", 2),
        ("Color", "Navyblue", 1), ("Color", "navy blue", 1))  # a group whose preferred spelling it lacks
        for _ in range(n)]
    found = {(s.kind, s.canonical): [text for text, _ in s.variants] for s in suggest(tags, taxonomy)}
    assert found == {("attribute", "Color"): ["colors"], ("value", "T-Shirt"): ["Tshirts"],
                     ("value", "Navy Blue"): ["Navyblue"]}


def test_shipped_taxonomies_are_found_by_name() -> None:
    shipped = shipped_taxonomies()
    assert shipped == {"en-fashion": REPO / "taxonomy" / "en-fashion.yaml",
                       "fa-fashion": REPO / "taxonomy" / "fa-fashion.yaml"}
    assert find_taxonomy("fa-fashion") == find_taxonomy("fa-fashion.yaml") == shipped["fa-fashion"]
    with pytest.raises(TaxonomyError, match=r"no shipped taxonomy of that name \(shipped with tagkit: en-fashion, "
                                            r"fa-fashion\)"):
        find_taxonomy("de-fashion")


def test_cli_imports_a_shipped_taxonomy_by_name_and_a_file_of_that_name_wins(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a user's folder: no taxonomy/ here
    runner = CliRunner()
    db = str(tmp_path / "t.db")
    imported = runner.invoke(main, ["--db", db, "taxonomy", "import", "fa-fashion", "--json"], catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["taxonomy"] == "fa-fashion"
    with Store(db) as store:
        stored = stored_taxonomy(store)
    assert stored is not None and stored.name == "fa-fashion" and len(stored.attributes) == 291
    assert stored.canonical(Tag("رنگ", "قهوه ای")) == Tag("رنگ", f"قهوه{ZWNJ}ای")

    small(tmp_path).rename(tmp_path / "en-fashion")  # a file named like a shipped taxonomy is that file
    mine = runner.invoke(main, ["--db", db, "taxonomy", "import", "en-fashion", "--json"], catch_exceptions=False)
    assert mine.exit_code == 0 and json.loads(mine.stdout)["taxonomy"] == "test"

    def refused(name_or_path: str) -> str:
        result = runner.invoke(main, ["--db", db, "taxonomy", "import", name_or_path])
        assert result.exit_code == 2, result.output
        return " ".join(result.stderr.split())

    listing = "no shipped taxonomy of that name (shipped with tagkit: en-fashion, fa-fashion)"
    assert f"no file de-fashion and {listing}" in refused("de-fashion")
    assert f"no file elsewhere/fa-fashion.yaml and {listing}" in refused("elsewhere/fa-fashion.yaml")
    as_written = runner.invoke(main, ["--db", db, "taxonomy", "import", "taxonomy/fa-fashion.yaml", "--json"])
    assert as_written.exit_code == 0 and json.loads(as_written.stdout)["taxonomy"] == "fa-fashion"
    assert "is a folder, not a taxonomy file" in refused(str(tmp_path))
    listed = runner.invoke(main, ["taxonomy", "import", "--help"]).stdout
    assert "Shipped with tagkit: en-fashion, fa-fashion." in listed


def test_suggest_shows_a_control_character_that_sets_two_spellings_apart(tmp_path: Path) -> None:
    """Torob has `بافت` once with a stray backspace: suggest merges it and writes the backspace as an escape."""
    products = tmp_path / "products.jsonl"
    products.write_text("\n".join(json.dumps({"id": str(n), "title": "بلوز", "attributes": {"جنس": [value]}},
                                              ensure_ascii=False)
                                   for n, value in enumerate(["بافت", "بافت", "بافت\b"])), encoding="utf-8")
    out = CliRunner().invoke(main, ["--db", str(tmp_path / "t.db"), "taxonomy", "suggest", str(products), "--map",
                                    "tags=attributes"], catch_exceptions=False)
    assert out.exit_code == 0 and "\b" not in out.stdout
    assert "جنس: بافت (2), بافت\\x08 (1)  ->  بافت" in out.stdout


def test_cli_import_show_map_suggest(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "t.db")

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    nowhere = runner.invoke(main, ["--db", db, "taxonomy", "map", "x", "رنگ: مشکی"])
    assert nowhere.exit_code == 2 and "no database" in nowhere.output and not Path(db).exists()
    assert json.loads(run("taxonomy", "import", str(small(tmp_path)), "--json"))["added"] == 12
    assert json.loads(run("taxonomy", "import", str(small(tmp_path)), "--json"))["unchanged"] == 12
    assert "├── کفش" in run("taxonomy", "show", "--tree")
    assert "رنگ  [one value]" in run("taxonomy", "show")
    for formats in (["--yaml", "--json"], ["--tree", "--yaml"], ["--tree", "--json"]):  # one was ignored, silently
        refused = runner.invoke(main, ["--db", db, "taxonomy", "show", *formats])
        assert refused.exit_code == 2 and "give one of them" in refused.output, formats
    run("taxonomy", "map", "سیاه", "رنگ: مشکی")
    assert "مشکی  = سیاه" in run("taxonomy", "show", "--attribute", "رنگ")
    products = tmp_path / "products.jsonl"
    products.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "1", "title": "کیف", "category": "كفش", "attributes": {"ويژگي ها": ["اورجینال"], "رنگ": ["سیاه"]}},
        {"id": "2", "title": "کیف", "attributes": {"رنگ": ["قهوه ای", "قهوه‌ای"], "colour": ["NAVY"]}},
    ]), encoding="utf-8")
    run("import", str(products), "--no-images", "--map", "tags=attributes")
    with Store(db) as store:
        stored = {p.id: p for p in store.iter_products()}
    assert stored["1"].tags == (Tag(f"ویژگی{ZWNJ}ها", "اورجینال"), Tag("رنگ", "مشکی"))
    assert stored["1"].category == ("مد و پوشاک", "کفش")
    assert stored["2"].tags == (Tag("رنگ", f"قهوه{ZWNJ}ای"), Tag("color", "Navy Blue"))
    assert "ویژگی‌ها" not in run("taxonomy", "suggest")  # canonical already: nothing to suggest
    fresh = str(tmp_path / "fresh.db")
    out = runner.invoke(main, ["--db", fresh, "taxonomy", "suggest", str(products), "--map", "tags=attributes"])
    assert out.exit_code == 0 and f"ويژگي ها (1)  ->  ویژگی{ZWNJ}ها  [Arabic letters, half-space]" in out.output
    missing = runner.invoke(main, ["--db", fresh, "taxonomy", "show"])
    assert missing.exit_code == 2 and "no database at" in missing.output  # suggest did not create one
    Store(fresh).close()
    missing = runner.invoke(main, ["--db", fresh, "taxonomy", "show"])
    assert missing.exit_code == 4 and "no taxonomy" in missing.output
    bad = runner.invoke(main, ["--db", fresh, "taxonomy", "map", "x", "y"])
    assert bad.exit_code == 2


def test_import_says_which_labels_the_taxonomy_does_not_have(tmp_path: Path) -> None:
    """Labels outside the taxonomy were learnt, and then never predicted or silently dropped, without a word."""
    from tagkit.ingest import import_products

    catalogue = tmp_path / "p.csv"
    catalogue.write_text("id,title,category,tags\n"
                         "1,کفش,مد و پوشاک > کفش,رنگ: مشکی|رنگ: آبی|جنسیت: زنانه\n"
                         "2,ساعت,اکسسوری > ساعت,رنگ: آبی|colour: navy\n"
                         "3,کیف,,color: Black|colour: navy|رنگ: مشکی|رنگ: قهوه ای سوخته\n", "utf-8")
    with Store(tmp_path / "t.db") as store:
        import_taxonomy(store, load_taxonomy(small(tmp_path)))
        report = import_products(store, catalogue, embedder=None)
        notes = {p.message.split(" (")[0]: p for p in report.problems if "taxonomy" in p.message}
        assert set(notes) == {"1 products have a category the taxonomy does not have",
                              "2 tags have a value the taxonomy does not allow",
                              "1 tags are of attributes the taxonomy does not list",
                              # two colours, one value in the taxonomy: predictions give one, recall halves
                              "2 products have several values of an attribute the taxonomy gives one value"}
        several = notes["2 products have several values of an attribute the taxonomy gives one value"].message
        assert "رنگ ×2, color ×1" in several
        outside = notes["1 products have a category the taxonomy does not have"]
        assert "get another one or none" in outside.message
        assert all(p.info for p in notes.values())
        assert "اکسسوری > ساعت ×1" in notes["1 products have a category the taxonomy does not have"].message
        assert "رنگ: آبی ×2" in notes["2 tags have a value the taxonomy does not allow"].message
        assert not any("taxonomy" in p.message for p in import_products(store, catalogue, embedder=None,
                                                                        keep_labels=True).problems)


def test_a_renamed_parent_keeps_its_children(tmp_path: Path) -> None:
    """`Bottomwear` renamed `Lowerwear` (the old path a synonym): `Apparel > Bottomwear > Jeans` was left unknown."""
    text = ("categories:\n  Apparel:\n    Lowerwear:\n      Jeans:\n      Shorts:\n    Topwear:\n      Shorts:\n"
            "category_synonyms:\n  Apparel > Bottomwear: Apparel > Lowerwear\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    assert taxonomy.canonical_category(("Apparel", "Bottomwear", "Jeans")) == ("Apparel", "Lowerwear", "Jeans")
    assert taxonomy.canonical_category(("apparel", "bottomwear", "shorts")) == ("Apparel", "Lowerwear", "Shorts")
    assert taxonomy.canonical_category(("Apparel", "Bottomwear", "Skirts")) == ("Apparel", "Bottomwear", "Skirts")
    assert not taxonomy.has_category(("Apparel", "Bottomwear", "Skirts"))


def test_a_value_without_words_matches_only_itself(tmp_path: Path) -> None:
    """Values and synonyms with no word or number in them (`+`, `...`, an emoji) all had the empty match key: a
    synonym `...` for مشکی made `---` and `؟` مشکی too, and a value `+` took `-`, `?` and `🔥`."""
    text = ("attributes:\n  - name: size\n    values: ['+', '-', S]\n"
            "  - name: رنگ\n    values: [{value: مشکی, synonyms: ['...']}, سفید]\n")
    taxonomy = load_taxonomy(small(tmp_path, text))
    assert taxonomy.canonical(Tag("size", "+")) == Tag("size", "+")
    assert taxonomy.canonical(Tag("size", "-")) == Tag("size", "-")
    assert taxonomy.canonical(Tag("size", "＋")) == Tag("size", "+")  # full-width: the same sign
    assert taxonomy.canonical(Tag("رنگ", "...")) == Tag("رنگ", "مشکی")
    for stray in ("?", "🔥", "*"):
        assert not taxonomy.known(taxonomy.canonical(Tag("size", stray))), stray
    for stray in ("---", "؟", "!?"):
        assert taxonomy.canonical(Tag("رنگ", stray)) == Tag("رنگ", stray), stray


def test_suggest_takes_no_value_without_words_for_a_spelling_of_another(tmp_path: Path) -> None:
    """`-`, `!!!`, `😀` had one fold key with every other such value and with a synonym `...`: `suggest` offered to
    map them all onto مشکی, and `--commands` printed the `map` lines that would do it."""
    taxonomy = load_taxonomy(small(tmp_path, "attributes:\n  - name: رنگ\n    values: [{value: مشکی, "
                                              "synonyms: ['...']}, سفید]\n"))
    tags = [Tag("رنگ", v) for v in ("-", "؟؟", "***", "!!!", "😀", "😀😀", "+", "مشکی", "مشكي", "...", "…")]
    assert suggest(tags, taxonomy) == []  # the taxonomy maps مشكي and `…` (the synonym `...` in one character)
    groups = {frozenset(text for text, _ in s.variants) for s in suggest(tags)}
    assert groups == {frozenset({"مشکی", "مشكي"}), frozenset({"...", "…"})}



def test_signs_are_not_spelling_in_a_taxonomy_nor_in_suggest(tmp_path: Path) -> None:
    """`+1.5`, `-1.5` and `1.5` (lens powers), `A+` and `A-` (blood groups), `10%` and `10` are other values, not
    spellings of one (a curator audit: a taxonomy listing two was refused, "'1.5' is already value '+1.5'", and one
    listing `+1.5` rewrote a label `-1.5` to it, silently; `suggest` offered the merge). A hyphen between words
    (`T-shirt`) is still spelling."""
    values = ["+1.5", "-1.5", "1.5", "A+", "A-", "A", "10%", "10", "T-shirt", "38-40"]
    taxonomy = load_taxonomy(small(tmp_path, "attributes:\n  - name: v\n    values: [" +
                                   ", ".join(f"'{v}'" for v in values) + "]\n"))
    for value in values:
        assert taxonomy.canonical(Tag("v", value)) == Tag("v", value), value
    for written, value in [("−1.5", "-1.5"), ("+ 1.5", "+1.5"), ("۱۰٪", "10%"), ("a +", "A+"), ("T Shirt", "T-shirt"),
                           ("Tshirt", None), ("38–40", "38-40")]:
        found = taxonomy.canonical(Tag("v", written))
        assert (found.value if taxonomy.known(found) else None) == value, written
    only_plus = load_taxonomy(small(tmp_path, "attributes:\n  - {name: v, open: true, values: ['+1.5']}\n"))
    assert only_plus.canonical(Tag("v", "-1.5")) == Tag("v", "-1.5"), "an open attribute passes it as it is"
    with pytest.raises(TaxonomyError, match=r"'a \+' is already value 'A\+' of 'v' \(spelt otherwise"):
        load_taxonomy(small(tmp_path, "attributes:\n  - {name: v, values: ['A+', 'A-', 'a +']}\n"))
    tags = [Tag("v", v) for v in ("+1.5", "-1.5", "1.5", "A+", "A-", "10%", "10")] * 2
    assert suggest(tags) == []
    assert [sorted(text for text, _ in s.variants) for s in suggest([*tags, Tag("v", "+ 1.5")])] \
        == [["+ 1.5", "+1.5"]], "spellings with the same signs still group"


def test_an_import_names_what_it_removed_and_the_stored_labels_it_leaves_out(tmp_path: Path) -> None:
    """A curator renames a category without a synonym and deletes a value that stored products carry: the import
    said `removed 2` and nothing else, and the labels were then left out of training and of predictions silently
    (the model's paths outside the tree: no category)."""
    db = tmp_path / "t.db"
    products = tmp_path / "products.csv"
    products.write_text("id,title,category,tags\n"
                        "1,کفش کتانی,مد و پوشاک > کفش,رنگ: مشکی\n"
                        "2,کفش چرم,مد و پوشاک > کفش,رنگ: مشکی\n"
                        "3,پیراهن مردانه,مد و پوشاک > پیراهن,رنگ: قهوه ای\n", "utf-8")

    def run(*args: str):
        return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)

    assert run("taxonomy", "import", str(small(tmp_path))).exit_code == 0
    assert run("import", str(products)).exit_code == 0
    edited = small(tmp_path, SMALL.replace("    کفش:\n", "    پاپوش:\n").replace("      - مشکی\n", ""))
    result = run("taxonomy", "import", str(edited), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["removed_entries"]) == {"مد و پوشاک > کفش", "رنگ: مشکی"}
    assert summary["removed"] == 2
    assert "note: 2 entries of the database's taxonomy not in" in result.stderr and "  رنگ: مشکی" in result.stderr
    [category, tags] = summary["outside"]
    assert category.startswith("2 products have a category the taxonomy does not have (مد و پوشاک > کفش ×2)")
    assert tags.startswith("2 tags have a value the taxonomy does not allow (رنگ: مشکی ×2)")
    assert category in result.stderr and tags in result.stderr
    again = json.loads(run("taxonomy", "import", str(edited), "--json").stdout)
    assert again["removed_entries"] == [] and len(again["outside"]) == 2, "the labels are still outside it"


def test_a_mistake_in_an_entry_names_its_line(tmp_path: Path) -> None:
    """In an 8,770-line taxonomy, `attributes[4] (رنگ): values[56]` was the only way to find the entry (a curator
    audit); an unquoted `- سفید: براق` said only "unknown key 'سفید'"."""
    text = ("name: t\nattributes:\n  - name: رنگ\n    values:\n      - مشکی\n      - سفید\n      - مشکی\n"
            "  - name: x\n    values:\n      - a\n      - سفید: براق\n")
    with pytest.raises(TaxonomyError, match=r"taxonomy\.yaml, line 7: attributes\[0\] \(رنگ\): values\[2\]: value "
                                            "'مشکی' is listed twice"):
        load_taxonomy(small(tmp_path, text))
    with pytest.raises(TaxonomyError, match=r"line 10: attributes\[1\] \(x\): values\[1\]: unknown key 'سفید'; "
                                            r"known keys: value, synonyms \(a value with `: ` in it needs quotes: "
                                            r'- "سفید: براق"\)'):
        load_taxonomy(small(tmp_path, text.replace("      - مشکی\n  -", "  -")))
    whole = ("attributes:\n  - name: رنگ\n    values:\n      - value: مشکی\n        synonyms: ['ویژگی‌ها: تیره']\n"
             "      - value: سفید\n        synonyms: ['ویژگی ها: تیره']\n")
    with pytest.raises(TaxonomyError, match=r"taxonomy\.yaml, line 6: attribute 'رنگ': value 'سفید': the synonym"):
        load_taxonomy(small(tmp_path, whole))  # an entry named by its names, not its place


def test_a_category_tree_that_yaml_aliases_blow_up_is_refused(tmp_path: Path) -> None:
    """A taxonomy of 1 KB whose aliases repeat a branch (9^8 paths) used 2 GB and was killed; one whose
    categories hold themselves gave a traceback. Both are refused, saying why."""
    lines = ["categories:", "  x0: &a0 {" + ", ".join(f"k{j}: " for j in range(9)) + "}"]
    lines += [f"  x{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}" for i in range(1, 8)]
    with pytest.raises(TaxonomyError, match="more than 200,000 categories"):
        load_taxonomy(small(tmp_path, "\n".join(lines) + "\nattributes: [color]\n"))
    with pytest.raises(TaxonomyError, match="more than 30 levels deep"):
        load_taxonomy(small(tmp_path, "categories: &c\n  A: *c\n"))
    with pytest.raises(TaxonomyError, match="more than 30 levels deep"):  # a list holding itself: a traceback
        load_taxonomy(small(tmp_path, "categories: &c [a, *c]\n"))
    empty = ["categories:", "  x: &a0 [" + ",".join(["~"] * 10) + "]"]  # no path at all, but 10^8 lists: it hung
    empty += [f"  y{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(TaxonomyError, match="more than 200,000 categories"):
        load_taxonomy(small(tmp_path, "\n".join(empty) + "\n"))


def test_an_attribute_of_many_values_is_read_in_linear_time(tmp_path: Path) -> None:
    """Each value was compared with every one before it: 20,000 values took 16 s, 40,000 ran past 100 s."""
    values = "".join(f"  - v{i}\n" for i in range(20_000))
    taxonomy = load_taxonomy(small(tmp_path, f"attributes:\n- name: code\n  values:\n{values}"))
    assert len(taxonomy.attributes[0].values) == 20_000
    with pytest.raises(TaxonomyError, match="listed twice"):
        load_taxonomy(small(tmp_path, f"attributes:\n- name: code\n  values:\n{values}  - v7\n"))
