"""Shared helpers for the benchmarks: the real data sets as tagkit Datasets, fixed splits, timing.

The fashion catalogue goes through tagkit's own import (products + image embeddings into a bench database,
`bench/.cache/fashion.db`, built once and reused); the Torob title set is read straight from its CSV.
"""

from __future__ import annotations

import csv
import statistics
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
CACHE = REPO / "bench" / ".cache"
RESULTS = REPO / "bench" / "results"


def stable_hash(text: str, salt: str = "") -> int:
    return zlib.crc32(f"{salt}{text}".encode())


def split_by_id(ids: list[str], test_share: float = 0.2, salt: str = "test") -> np.ndarray:
    """A fixed test mask: a product is in the test share when the hash of its id says so."""
    return np.array([stable_hash(i, salt) % 10_000 < test_share * 10_000 for i in ids], dtype=bool)


def stratified_split(ids: list[str], labels: list[Any], test_share: float = 0.2, salt: str = "test") -> np.ndarray:
    """A fixed stratified test mask: in each class, the products with the smallest id hashes."""
    by_class: dict[Any, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    test = np.zeros(len(ids), dtype=bool)
    for rows in by_class.values():
        rows.sort(key=lambda i: (stable_hash(ids[i], salt), ids[i]))
        test[rows[: round(len(rows) * test_share)]] = True
    return test


def fashion_dataset(variant: str = "int8", verbose: bool = True):
    """All 30,921 fashion products with their embeddings, via `tagkit import` into a cached bench database
    (re-imported when the image model changes: the database keeps features per model id)."""
    from tagkit.config import load_config
    from tagkit.dataset import load_dataset
    from tagkit.image import ImageEmbedder
    from tagkit.ingest import import_products
    from tagkit.store import Store

    styles = SHARED / "fashion" / "styles.csv"  # the images are read in place from images.tar next to it
    embedder = ImageEmbedder(variant)
    db = CACHE / ("fashion.db" if variant == "int8" else f"fashion-{variant}.db")
    with Store(db) as store:
        missing = store.db.execute(
            "select count(distinct p.image_hash) from products p left join features f on f.image_hash = p.image_hash "
            "and f.model = ? where f.image_hash is null", [embedder.model_id]).fetchone()[0]
        products = store.db.execute("select count(*) from products").fetchone()[0]
        if products < 30_921 or missing:
            if verbose:
                print(f"importing the fashion catalogue into {db} (embeddings for {embedder.model_id}) ...")
            mapping = load_config(REPO / "examples" / "fashion.yaml").mapping
            import_products(store, styles, mapping=mapping, embedder=embedder)
        return load_dataset(store, embedder)


def torob_titles_dataset():
    """The Torob title set (8,822 Persian titles, 11 categories); no images."""
    from tagkit.dataset import Dataset
    from tagkit.product import Product

    path = SHARED / "torob_titles" / "torob_quera_train.csv"
    names = {}
    with (SHARED / "torob_titles" / "torob_quera_categories.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            names[row["cat_id"]] = row["category_title_en"]
    products = []
    with path.open(encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            title = " ".join(t for t in (row["name1"], row["name2"]) if t and t.strip())
            products.append(Product(id=f"t{n}", title=title, category=(names[row["cat_id"]],)))
    return Dataset.from_products(products, {}, 8)


def torob_attributes_dataset():
    """Torob products with attribute values (Persian; multi-valued attributes), through tagkit's reader."""
    from tagkit.catalogue import read_input
    from tagkit.config import load_config
    from tagkit.dataset import Dataset
    from tagkit.product import Product

    mapping = load_config(REPO / "examples" / "torob.yaml").mapping
    products = [r for r in read_input(SHARED / "torob_attributes" / "products.jsonl", mapping=mapping)
                if isinstance(r, Product)]
    return Dataset.from_products(products, {}, 8)


def median_time(run: Callable[[], Any], runs: int = 3) -> tuple[float, list[float], Any]:
    """Median wall time of `runs` calls, all the times, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result
