"""Build the shipped taxonomies from the public catalogues tagkit learns from, with tagkit's own code.

    .venv/bin/python tools/build_taxonomy.py            # writes taxonomy/fa-fashion.yaml and taxonomy/en-fashion.yaml

- `fa-fashion.yaml`: the Torob products with attribute values (../shared/data/torob_attributes/products.jsonl,
  read with examples/torob.yaml): attribute names and values merged by fold key (half-space, Arabic letters,
  spacing, case, plural; `tagkit.vocabulary`), plus the merges below that a person confirmed from shared
  values; product types as a tree by word prefix (`شلوار جین بگ` under `شلوار جین` under `شلوار`).
- `en-fashion.yaml`: the Myntra fashion catalogue (../shared/data/fashion/styles.csv, read with
  examples/fashion.yaml): masterCategory > subCategory > articleType, and the single-valued attributes
  color and usage, with common other names of its colours.

The output is deterministic: the same data gives the same bytes. Evidence for each confirmed merge (the
values the names share) is printed on stderr.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tagkit.catalogue import read_input  # noqa: E402
from tagkit.config import load_config  # noqa: E402
from tagkit.product import Product  # noqa: E402
from tagkit.taxonomy import Taxonomy, dump_taxonomy  # noqa: E402
from tagkit.text import match_key  # noqa: E402
from tagkit.vocabulary import build_taxonomy, fold_key  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "taxonomy"

# Attribute names a person confirmed as one attribute (canonical: other names), from the values they share.
FA_ATTRIBUTE_SYNONYMS = {
    "ویژگی‌ها": ["توصیفگرها", "ویژگی خاص"],  # free descriptors: اورجینال, وارداتی, شیک, خاص, ...
    "جنس": ["جنس پارچه", "jens"],  # material: کتان, مخمل, اسپان, ...; jens: the name in Latin letters (طلا, نقره)
    "طرح": ["tarh"],  # the name in Latin letters: هندسی, خفاش, عروسک
    "اصالت": ["اصالت سنگ", "اصالت و کیفیت", "اصالت و فرآوری", "کیفیت/اصالت", "منبع سنگ", "منشأ طبیعی",
              "منشاء سنگ"],  # authenticity: طبیعی, معدنی, اصل, ... (of stones, under six names)
    "منشأ": ["مبدا", "کشور مبدأ", "کشور سازنده", "کشور تولید کننده", "کشور مبدأ/تولیدکننده"],  # origin, made in:
    # آفریقایی, برزیل, افغانستان, ...
    "کاربرد": ["کاربری", "نوع کاربری", "کابرد"],  # use: مجلسی, اداری, ورزشی, راحتی, ...; کابرد: a typo
    "نوع کلی": ["نوغ کلی"],  # a typo
    "جنسیت": ["جنسित"],  # its last letter Devanagari
}

# Values a person confirmed as one value (attribute: {value: [other ways of writing it]}): other words for the same
# colour, season, size or collar, and forms the match key cannot join (ذ/ز, colloquial endings, Latin letters).
FA_VALUE_SYNONYMS = {
    "رنگ": {
        "مشکی": ["سیاه", "Black", "Siyah"],  # black
        "سرمه‌ای": ["سورمه‌ای", "NAVY BLUE", "Navy"],  # navy
        "قرمز": ["سرخ", "RED"],  # red
        "خاکستری": ["GREY", "Gray"],  # grey (طوسی, a grey of its own in the data's names, is left apart)
        "ذغالی": ["زغالی", "زغال سنگی"],  # charcoal
        "کرم": ["کرمی", "Cream"],  # cream
        "نقره‌ای": ["سیلور", "Silver"],  # silver
        "رنگین کمانی": ["رنگین کمان", "رنگین کمون"],  # rainbow
    },
    "جنسیت": {
        "مردانه و زنانه": ["مردانه زنانه", "زنانه و مردانه", "زنانه مردانه", "یونیسکس", "Unisex"],  # unisex
        "بچگانه": ["بچه گانه"],  # children's
    },
    "استایل": {"اسپرت": ["اسپورت"]},  # sporty
    "جنس": {"لنین": ["لینن"], "جین": ["لی"], "چرم": ["چرمی"]},  # linen; denim; leather
    "فصل": {
        "تابستانی": ["تابستانه", "تابستان", "تابستونی"],
        "زمستانی": ["زمستانه", "زمستان", "زمستونی"],
        "پاییزی": ["پاییزه", "پاییز"],
        "بهاری": ["بهاره", "بهار"],
    },
    "نوع یقه": {"یقه گرد": ["گرد", "Crew Neck"], "یقه پلو": ["پلو", "پولو", "یقه پولو", "پلو (یقه دار)"]},
    "سایز": {"XXL": ["2XL", "دو ایکس لارج", "دو ایکس"], "فری سایز": ["free size", "تک سایز"]},
}

# Values that are not values of their attribute (attribute: [values]), left out: "any colour", "rare", a year,
# sleeve lengths in centimetres, a code; fabrics and a colour filed under gender or upper material.
FA_NOT_VALUES = {
    "رنگ": ["دلخواه", "هر رنگی", "رنگ بندی", "18 رنگ بندی", "جامد", "کمیاب", "پیاده روی سفید/سیاه/مسطح"],
    "جنسیت": ["نا مشخص", "نامشخص 3-4 سال", "نامشخص 9 تا 13 سال", "لنین", "ریما", "سوئیت", "مازراتی", "مخمل",
              "پشمی", "کرپ"],
    "نوع آستین": ["63", "قد آستین 55"],
    "فصل": ["2021"],
    "جنس رویه": ["سیاه"],
    "منشأ": ["طبیعی", "معدنی"],  # authenticity (اصالت), not origin
    "سایز": ["MÇS", "S3KF75Z8"],  # a brand, a product code
    "ویژگی‌ها": ["400843"],
}

# Brand pairs given together to one product, one written in Latin letters and one in Persian, that are not one
# brand written twice (a collaboration, a logo, a product line, another brand).
FA_NOT_SAME_BRAND = [
    ("puma", "اسکوئدریا فراری"), ("puma", "بی ام و"), ("champion", "لوگو"), ("Nike Jordan", "کولسی"),
    ("herrenk", "توتکو الیت"), ("Sare Çocuk Giyim", "سریس"), ("lee", "لی نا"), ("WIKO", "ویکو"),
    ("LCW Kids", "ال سی وایکیکی"), ("LCW STEPS", "ال سی وایکیکی"), ("LCWAIKIKI Classic", "ال سی وایکیکی"),
    ("çikoby", "شیک بوی"),
]

EN_VALUE_SYNONYMS = {
    "color": {
        "Navy Blue": ["Navy"],
        "Grey": ["Gray"],
        "Grey Melange": ["Gray Melange", "Heather Grey"],
        "Multi": ["Multicolor", "Multicolour", "Multi Color", "Multi-coloured"],
        "Off White": ["Ivory"],
        "Turquoise Blue": ["Turquoise"],
        "Lime Green": ["Lime"],
        "Fluorescent Green": ["Neon Green"],
        "Skin": ["Skin Tone"],
        "Coffee Brown": ["Coffee"],
    },
}


def products(path: Path, config: str) -> list[Product]:
    mapping = load_config(REPO / "examples" / config).mapping
    return [r for r in read_input(path, mapping=mapping) if isinstance(r, Product)]


def evidence(items: list[Product], synonyms: dict[str, list[str]]) -> None:
    """Print the values each confirmed merge's names share."""
    values: dict[str, Counter[str]] = defaultdict(Counter)
    for product in items:
        for tag in product.tags:
            values[match_key(tag.name)][match_key(tag.value)] += 1
    for canonical, others in synonyms.items():
        mine = values[match_key(canonical)]
        for other in others:
            theirs = values[match_key(other)]
            shared = sorted(set(mine) & set(theirs), key=lambda v: -(mine[v] + theirs[v]))
            print(f"  {other} ({sum(theirs.values())}) -> {canonical} ({sum(mine.values())}): "
                  f"{len(shared)} shared values, e.g. {', '.join(shared[:6])}", file=sys.stderr)


def attribute_of(name: str) -> str:
    """The confirmed name of an attribute written `name` (itself when no merge names it)."""
    for canonical, others in FA_ATTRIBUTE_SYNONYMS.items():
        if match_key(name) in {match_key(canonical), *map(match_key, others)}:
            return canonical
    return name


def without_non_values(items: list[Product]) -> list[Product]:
    """The products without the tags of `FA_NOT_VALUES`, saying how many were left out."""
    dropped = {(match_key(name), match_key(value)) for name, values in FA_NOT_VALUES.items() for value in values}
    out = [replace(p, tags=tuple(t for t in p.tags if (match_key(attribute_of(t.name)), match_key(t.value))
                                 not in dropped)) for p in items]
    left_out = sum(len(p.tags) for p in items) - sum(len(p.tags) for p in out)
    print(f"  left out {left_out} tags that are not values of their attribute", file=sys.stderr)
    return out


def brands_written_twice(items: list[Product], attribute: str = "برند") -> dict[str, list[str]]:
    """One brand written in Latin and in Persian letters: the pairs of values given together to a product that has
    exactly two (`FA_NOT_SAME_BRAND` left out), joined into groups {most frequent spelling: [the others]}."""
    latin = re.compile(r"[A-Za-z]")
    rejected = {frozenset(map(fold_key, pair)) for pair in FA_NOT_SAME_BRAND}
    spellings: dict[str, Counter[str]] = defaultdict(Counter)  # fold key -> its spellings
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    pairs = 0
    for product in items:
        values = {t.value for t in product.tags if match_key(t.name) == match_key(attribute)}
        for value in values:
            spellings[fold_key(value)][value] += 1
        keys = sorted({fold_key(v) for v in values})
        if (len(keys) == 2 and len({bool(latin.search(v)) for v in values}) == 2
                and frozenset(keys) not in rejected):
            parent[root(keys[0])] = root(keys[1])
            pairs += 1
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for key in parent:
        groups[root(key)].update(spellings[key])
    merged = {}
    for group in sorted(groups.values(), key=lambda g: (-sum(g.values()), min(g))):
        first, *others = sorted(group, key=lambda v: (-group[v], v))
        merged[first] = others
    print(f"  {attribute}: {pairs} products give one brand in both scripts: {len(merged)} brands, e.g. "
          + "; ".join(f"{k} = {' = '.join(v)}" for k, v in list(merged.items())[:5]), file=sys.stderr)
    return merged


def fa_fashion(torob: list[Product]) -> Taxonomy:
    """The Persian fashion vocabulary of the Torob products (evidence for its merges on stderr)."""
    print(f"fa-fashion: {len(torob):,} Torob products; confirmed merges:", file=sys.stderr)
    evidence(torob, FA_ATTRIBUTE_SYNONYMS)
    torob = without_non_values(torob)
    value_synonyms = {**FA_VALUE_SYNONYMS, "برند": brands_written_twice(torob)}
    return build_taxonomy(torob, name="fa-fashion", language="fa", attribute_synonyms=FA_ATTRIBUTE_SYNONYMS,
                          value_synonyms=value_synonyms, nest_categories=True)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    fa = fa_fashion(products(SHARED / "torob_attributes" / "products.jsonl", "torob.yaml"))
    header = ("Persian fashion vocabulary, built by tools/build_taxonomy.py from the Torob products with attribute\n"
              "values (torob_attributes/products.jsonl read with examples/torob.yaml). Format: tagkit/taxonomy.py.")
    (OUT / "fa-fashion.yaml").write_text(dump_taxonomy(fa, header), encoding="utf-8")

    fashion = products(SHARED / "fashion" / "styles.csv", "fashion.yaml")
    print(f"en-fashion: {len(fashion):,} fashion products", file=sys.stderr)
    en = build_taxonomy(fashion, name="en-fashion", language="en", value_synonyms=EN_VALUE_SYNONYMS)
    header = ("English fashion vocabulary, built by tools/build_taxonomy.py from the Myntra fashion catalogue\n"
              "(fashion/styles.csv read with examples/fashion.yaml). Format: tagkit/taxonomy.py.")
    (OUT / "en-fashion.yaml").write_text(dump_taxonomy(en, header), encoding="utf-8")
    for taxonomy in (fa, en):
        print(f"{taxonomy.name}: {len(taxonomy.categories):,} categories, {len(taxonomy.attributes):,} attributes, "
              f"{sum(len(a.values) for a in taxonomy.attributes):,} values", file=sys.stderr)


if __name__ == "__main__":
    main()
