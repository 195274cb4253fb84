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

import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tagkit.catalogue import read_input  # noqa: E402
from tagkit.config import load_config  # noqa: E402
from tagkit.product import Product  # noqa: E402
from tagkit.taxonomy import dump_taxonomy  # noqa: E402
from tagkit.text import match_key  # noqa: E402
from tagkit.vocabulary import build_taxonomy  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "taxonomy"

# Attribute names a person confirmed as one attribute (canonical: other names), from the values they share.
FA_ATTRIBUTE_SYNONYMS = {
    "ویژگی‌ها": ["توصیفگرها", "ویژگی خاص"],  # free descriptors: اورجینال, وارداتی, شیک, خاص, ...
    "منشأ": ["مبدا", "کشور مبدأ"],  # origin: آفریقایی, برزیل, افغانستان, ...
    "کاربرد": ["کاربری", "نوع کاربری"],  # use: مجلسی, اداری, ورزشی, راحتی, ...
    "جنس": ["جنس پارچه", "jens"],  # material: کتان, مخمل, اسپان, ...; jens: the name in Latin letters (طلا, نقره)
    "طرح": ["tarh"],  # the name in Latin letters: هندسی, خفاش, عروسک
    "اصالت": ["اصالت سنگ", "اصالت و کیفیت"],  # authenticity: طبیعی, معدنی, اصل, ...
}

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


def main() -> None:
    OUT.mkdir(exist_ok=True)
    torob = products(SHARED / "torob_attributes" / "products.jsonl", "torob.yaml")
    print(f"fa-fashion: {len(torob):,} Torob products; confirmed merges:", file=sys.stderr)
    evidence(torob, FA_ATTRIBUTE_SYNONYMS)
    fa = build_taxonomy(torob, name="fa-fashion", language="fa", attribute_synonyms=FA_ATTRIBUTE_SYNONYMS,
                        nest_categories=True)
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
