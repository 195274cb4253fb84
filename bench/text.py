"""Reading and text speed: catalogue rows/s and title tokens/s on the real data sets.

    python bench/text.py [--runs 3]

- read:    `read_products` over ../shared/data/fashion/styles.csv (30,921 rows, examples/fashion.yaml)
           and ../shared/data/torob_attributes/products.jsonl (5,121 records, examples/torob.yaml);
- tokens:  `tagkit.text.tokens` over the 8,822 Persian torob_titles (each made unique, so no cache hit;
           hazm loaded before timing) and the 30,921 English fashion titles.
Prints a table of medians and writes bench/results/text.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = REPO.parent / "shared" / "data"


def rate(count: int, work, runs: int) -> float:
    speeds = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        speeds.append(count / (time.perf_counter() - started))
    return statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"skipped: the data sets are not here ({SHARED} is missing)")
    from tagkit.catalogue import read_products
    from tagkit.config import load_config
    from tagkit.product import Product
    from tagkit.text import tokens

    rows = []
    for name, path, config in (
        ("read fashion CSV", SHARED / "fashion" / "styles.csv", "fashion.yaml"),
        ("read Torob JSONL", SHARED / "torob_attributes" / "products.jsonl", "torob.yaml"),
    ):
        mapping = load_config(REPO / "examples" / config).mapping
        count = sum(1 for record in read_products(path, mapping) if isinstance(record, Product))
        rows.append({"what": name, "items": count, "per_s": rate(count, lambda p=path, m=mapping: sum(
            1 for _ in read_products(p, m)), args.runs)})
    with (SHARED / "torob_titles" / "torob_quera_train.csv").open(encoding="utf-8") as f:
        persian = [row["name1"] for row in csv.DictReader(f)]
    with (SHARED / "fashion" / "styles.csv").open(encoding="utf-8") as f:
        english = [row["productDisplayName"] for row in csv.DictReader(f)]
    tokens("گرم کن")  # load hazm and its lexicon before timing
    salts = iter(range(10**9))  # a new suffix per run: no title is ever in tokens()'s cache

    for name, titles in (("tokens Persian titles", persian), ("tokens English titles", english)):

        def work(titles: list[str] = titles) -> None:
            salt = next(salts)
            for title in titles:
                tokens(f"{title} {salt}")

        rows.append({"what": name, "items": len(titles), "per_s": rate(len(titles), work, args.runs)})
    print(f"median of {args.runs} runs")
    print(f"{'what':24} {'items':>8} {'per s':>10}")
    for row in rows:
        print(f"{row['what']:24} {row['items']:>8,} {row['per_s']:>10,.0f}")
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / "text.json").write_text(json.dumps({"runs": args.runs, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
