"""Attribute extraction benchmark: tagkit's AttributeExtractor beside three baselines, on the same splits.

    .venv/bin/python bench/attributes.py                    # Torob (Persian) and AE-110k (English)
    .venv/bin/python bench/attributes.py --only torob

Torob attributes: the products whose `attributes` are not empty (5,053), split 80/20 by a hash of
`random_key` (bench/common.py `split_by_id`); gold = every `name: value` of `attributes` except `نوع کلی`
(values `نامشخص`, "unknown", are dropped as examples/torob.yaml does), rare ones included. Two scores:
**raw** (names as written) and **canonical** (gold and predictions through the shipped taxonomy
taxonomy/fa-fashion.yaml: `Taxonomy.canonical`); values are compared by match key in both. tagkit learns from
raw labels for the raw score and from canonical labels (a taxonomy applied at import) for the canonical one;
it is not given the taxonomy's value lists (they were built from all products, test included). A second
canonical row scores tagkit as the baselines are: learnt from raw labels, its output put through the taxonomy.

AE-110k: its train and test files; gold = the non-"n/a" values; each product asks for the attributes of its
`target_scores` (as in ExtractGPT), so every system answers only those, one value each.

Baselines: one-vs-rest logistic regression on TF-IDF (word 1-2 and char 2-5 grams) over the training
`name: value` pairs seen twice or more (threshold tuned on a fifth of the training products); dictionary
match (every training pair whose value occurs in the title); high-precision dictionary (those pairs whose
training precision, value in title -> pair in gold, is at least 0.5). Prints the tables and the per-attribute
precision/recall, and writes bench/results/attributes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import REPO, RESULTS, SHARED, split_by_id

from tagkit.dataset import Dataset
from tagkit.extract import AttributeExtractor, find_spans, parse_title
from tagkit.product import Product, Tag
from tagkit.taxonomy import Taxonomy, load_taxonomy
from tagkit.text import match_key

BARS = {"torob canonical": 0.75, "ae110k": 0.80}
SKIP = "نوع کلی"
Pair = tuple[str, str]


# -- data --------------------------------------------------------------------------------------------

def torob() -> tuple[list[Product], np.ndarray]:
    """Labelled Torob products (tags = their `attributes`) and the test mask."""
    from tagkit.catalogue import read_input
    from tagkit.config import Mapping

    path = SHARED / "torob_attributes" / "products.jsonl"
    labelled = {json.loads(line)["random_key"] for line in path.open(encoding="utf-8")
                if json.loads(line)["attributes"]}
    mapping = Mapping(id=("random_key",), title=("title", "persian_name"), category=("product",), tags=("attributes",),
                      description=(), skip_values=("نامشخص", "n/a", "nan", "null"))
    products = [r for r in read_input(path, mapping=mapping) if isinstance(r, Product) and r.id in labelled]
    return products, split_by_id([p.id for p in products])


def ae110k() -> tuple[list[Product], list[set[str]], list[Product], list[set[str]]]:
    def read(name: str) -> tuple[list[Product], list[set[str]]]:
        products, asked = [], []
        for n, line in enumerate((SHARED / "ae110k" / name).open(encoding="utf-8")):
            record = json.loads(line)
            tags = tuple(Tag(a, v) for a, values in record["target_scores"].items() for v in values if v != "n/a")
            products.append(Product(id=f"{name}:{n}", title=record["input"], category=(record["category"],),
                                    tags=tags))
            asked.append(set(record["target_scores"]))
        return products, asked

    return (*read("train.jsonl"), *read("test.jsonl"))


def dataset(products: Sequence[Product]) -> Dataset:
    return Dataset.from_products(products, {}, 8)


def pairs(tags: Sequence[Tag], taxonomy: Taxonomy | None = None) -> set[Pair]:
    """Scored pairs: (name, value match key), through the taxonomy when given; `نوع کلی` left out."""
    out = set()
    for tag in tags:
        if taxonomy is not None:
            tag = taxonomy.canonical(tag)
        if tag.name and tag.name != SKIP and match_key(tag.name) != match_key(SKIP):
            out.add((tag.name, match_key(tag.value)))
    return out


def canonical_products(products: Sequence[Product], taxonomy: Taxonomy) -> list[Product]:
    return [Product(id=p.id, title=p.title, category=p.category, tags=taxonomy.canonical_tags(p.tags))
            for p in products]


# -- scores ------------------------------------------------------------------------------------------

def score(gold: Sequence[set[Pair]], predicted: Sequence[set[Pair]]) -> dict:
    tp = fp = fn = 0
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for g, p in zip(gold, predicted, strict=True):
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
        for name, _ in g & p:
            per[name]["tp"] += 1
        for name, _ in p - g:
            per[name]["fp"] += 1
        for name, _ in g - p:
            per[name]["fn"] += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    table = {}
    for name, c in per.items():
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        table[name] = {"support": c["tp"] + c["fn"], "predicted": c["tp"] + c["fp"], "precision": round(p, 4),
                       "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}
    return {"micro_f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4),
            "predicted": tp + fp, "gold": tp + fn, "per_attribute": dict(sorted(table.items(),
                                                                           key=lambda kv: -kv[1]["support"]))}


# -- baselines ---------------------------------------------------------------------------------------

def training_pairs(train: Sequence[Product]) -> tuple[dict[str, Counter[str]], dict[Pair, str]]:
    """value key -> names (counts), and how each pair is written."""
    names: dict[str, Counter[str]] = defaultdict(Counter)
    written: dict[Pair, str] = {}
    for product in train:
        for tag in product.tags:
            key = match_key(tag.value)
            if key and tag.name != SKIP:
                names[key][tag.name] += 1
                written.setdefault((tag.name, key), tag.value)
    return names, written


def title_keys(title: str, max_len: int = 6) -> set[str]:
    parsed = parse_title(title)
    return {parsed.key(i, j) for i, j in parsed.spans(max_len)}


def dictionary(train: Sequence[Product], test: Sequence[Product], min_precision: float = 0.0,
               asked: Sequence[set[str]] | None = None) -> list[set[Pair]]:
    """Training pairs whose value occurs in the title; with `min_precision`, only the pairs that were right at
    least that often in training when their value was in the title."""
    names, _ = training_pairs(train)
    precision: dict[Pair, float] = {}
    if min_precision > 0:
        hits: Counter[Pair] = Counter()
        seen: Counter[str] = Counter()
        for product in train:
            keys = title_keys(product.title) & names.keys()
            gold = pairs(product.tags)
            for key in keys:
                seen[key] += 1
                for name in names[key]:
                    hits[(name, key)] += (name, key) in gold
        precision = {pair: hits[pair] / seen[pair[1]] for pair in hits if seen[pair[1]]}
    out = []
    for n, product in enumerate(test):
        found = set()
        for key in title_keys(product.title) & names.keys():
            for name in names[key]:
                if asked is not None and name not in asked[n]:
                    continue
                if min_precision <= 0 or precision.get((name, key), 0.0) >= min_precision:
                    found.add((name, key))
        out.append(_one_per_asked(found, asked[n]) if asked is not None else found)
    return out


def _one_per_asked(found: set[Pair], asked: set[str]) -> set[Pair]:
    best: dict[str, Pair] = {}
    for pair in sorted(found, key=lambda p: (-len(p[1]), p)):  # the longest value of an attribute (ties: in order)
        best.setdefault(pair[0], pair)
    return set(best.values())


def logistic(train: Sequence[Product], test: Sequence[Product], asked_train: Sequence[set[str]] | None = None,
             asked_test: Sequence[set[str]] | None = None, seed: int = 0) -> list[set[Pair]]:
    """One-vs-rest logistic regression on TF-IDF over training pairs seen twice or more; a global threshold
    chosen on a fifth of the training products; with asked attributes, the best value of each."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from tagkit.text import normalize

    counts = Counter(pair for p in train for pair in pairs(p.tags))
    labels = sorted(pair for pair, c in counts.items() if c >= 2)
    index = {pair: j for j, pair in enumerate(labels)}

    def matrix(products: Sequence[Product]) -> np.ndarray:
        y = np.zeros((len(products), len(labels)), dtype=np.int8)
        for i, p in enumerate(products):
            for pair in pairs(p.tags):
                if pair in index:
                    y[i, index[pair]] = 1
        return y

    def fit_predict(tr: Sequence[Product], te: Sequence[Product]) -> np.ndarray:
        words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
        texts_tr = [normalize(p.title) for p in tr]
        texts_te = [normalize(p.title) for p in te]
        x_tr = sp.hstack([words.fit_transform(texts_tr), chars.fit_transform(texts_tr)]).tocsr()
        x_te = sp.hstack([words.transform(texts_te), chars.transform(texts_te)]).tocsr()
        y = matrix(tr)
        out = np.zeros((len(te), len(labels)), dtype=np.float32)
        for j in range(len(labels)):
            if 0 < y[:, j].sum() < len(tr):
                model = LogisticRegression(C=10.0, solver="liblinear", random_state=seed).fit(x_tr, y[:, j])
                out[:, j] = model.predict_proba(x_te)[:, 1]
        return out

    def decide(probs: np.ndarray, threshold: float, asked: Sequence[set[str]] | None) -> list[set[Pair]]:
        out = []
        for i, row in enumerate(probs):
            chosen = {labels[j] for j in np.flatnonzero(row >= threshold)}
            if asked is not None:
                best: dict[str, tuple[float, Pair]] = {}
                for j in np.flatnonzero(row >= threshold):
                    pair = labels[j]
                    if pair[0] in asked[i] and row[j] > best.get(pair[0], (-1.0, pair))[0]:
                        best[pair[0]] = (float(row[j]), pair)
                chosen = {pair for _, pair in best.values()}
            out.append(chosen)
        return out

    hold = split_by_id([p.id for p in train], salt="lr-threshold")
    inner = [p for p, h in zip(train, hold, strict=True) if not h]
    held = [p for p, h in zip(train, hold, strict=True) if h]
    held_asked = [a for a, h in zip(asked_train, hold, strict=True) if h] if asked_train else None
    probs = fit_predict(inner, held)
    gold = [pairs(p.tags) for p in held]
    threshold = max(np.arange(0.1, 0.9, 0.05),
                    key=lambda t: score(gold, decide(probs, float(t), held_asked))["micro_f1"])
    return decide(fit_predict(train, test), float(threshold), asked_test)


# -- tagkit ------------------------------------------------------------------------------------------

def tagkit(train: Sequence[Product], test: Sequence[Product], asked_train: Sequence[set[str]] | None = None,
           asked_test: Sequence[set[str]] | None = None, taxonomy: Taxonomy | None = None
           ) -> tuple[list[set[Pair]], dict]:
    started = time.perf_counter()
    model = AttributeExtractor(skip_attributes=[SKIP], use_taxonomy_values=False)
    model.fit(dataset(train), taxonomy=taxonomy, attributes=asked_train)
    fitted = time.perf_counter()
    predictions = model.predict(dataset(test), attributes=asked_test)
    done = time.perf_counter()
    report = {**model.report, "fit_seconds": round(fitted - started, 1), "predict_seconds": round(done - fitted, 2)}
    return [pairs([t for t, _ in e.tags]) for e in predictions], report


# -- facts -------------------------------------------------------------------------------------------

def in_title_share(products: Sequence[Product]) -> float:
    total = found = 0
    for product in products:
        title = parse_title(product.title)
        for _, key in pairs(product.tags):
            total += 1
            found += bool(find_spans(title, key))
    return found / max(total, 1)


def mapping_used(products: Sequence[Product], taxonomy: Taxonomy) -> dict:
    """What the canonical mapping changes in the gold: renamed attributes, and how many values it respells."""
    renamed: Counter[tuple[str, str]] = Counter()
    respelled = merged = 0
    for product in products:
        for tag in product.tags:
            canonical = taxonomy.canonical(tag)
            if canonical.name != tag.name:
                renamed[(tag.name, canonical.name)] += 1
            if canonical.value != tag.value:
                respelled += 1
                merged += match_key(canonical.value) != match_key(tag.value)
    return {"taxonomy": "taxonomy/fa-fashion.yaml",
            "renamed_attributes": [{"raw": a, "canonical": b, "tags": n} for (a, b), n in renamed.most_common()],
            "values_respelled": respelled, "values_merged_beyond_match_key": merged}


# -- main --------------------------------------------------------------------------------------------

def table(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"{'system':<44} {'micro-F1':>8} {'P':>7} {'R':>7} {'predicted':>10} {'gold':>6}")
    for name, s in rows:
        print(f"{name:<44} {s['micro_f1']:>8.3f} {s['precision']:>7.3f} {s['recall']:>7.3f} "
              f"{s['predicted']:>10,} {s['gold']:>6,}")


def per_attribute(title: str, s: dict, limit: int = 30, min_support: int = 1) -> None:
    print(f"\n{title}")
    print(f"{'attribute':<28} {'support':>7} {'predicted':>9} {'P':>6} {'R':>6} {'F1':>6}")
    shown = [(a, r) for a, r in s["per_attribute"].items() if r["support"] >= min_support][:limit]
    for name, r in shown:
        print(f"{name[:28]:<28} {r['support']:>7} {r['predicted']:>9} {r['precision']:>6.2f} {r['recall']:>6.2f} "
              f"{r['f1']:>6.2f}")


def run_torob(results: dict) -> None:
    products, test_mask = torob()
    taxonomy = load_taxonomy(REPO / "taxonomy" / "fa-fashion.yaml")
    train = [p for p, t in zip(products, test_mask, strict=True) if not t]
    test = [p for p, t in zip(products, test_mask, strict=True) if t]
    gold_raw = [pairs(p.tags) for p in test]
    gold_can = [pairs(p.tags, taxonomy) for p in test]
    mapping = mapping_used(products, taxonomy)
    print(f"torob_attributes: {len(train):,} train / {len(test):,} test products, "
          f"{sum(map(len, gold_raw)):,} gold pairs in test; {in_title_share(test):.1%} of them in the title")
    print(f"mapping used ({mapping['taxonomy']}): "
          + ", ".join(f"{r['raw']} -> {r['canonical']} ({r['tags']})" for r in mapping["renamed_attributes"])
          + f"; {mapping['values_respelled']:,} values respelled ({mapping['values_merged_beyond_match_key']:,} "
            "merged beyond the match key)")
    systems: dict[str, Callable[[], list[set[Pair]]]] = {
        "logistic regression (one-vs-rest, TF-IDF)": lambda: logistic(train, test),
        "dictionary match": lambda: dictionary(train, test),
        "high-precision dictionary (>= 0.5)": lambda: dictionary(train, test, min_precision=0.5),
    }
    raw_rows, can_rows, out = [], [], {}
    for name, run in systems.items():
        started = time.perf_counter()
        predicted = run()
        raw, can = score(gold_raw, predicted), score(gold_can, [_map(p, taxonomy) for p in predicted])
        out[name] = {"raw": raw, "canonical": can, "seconds": round(time.perf_counter() - started, 1)}
        raw_rows.append((name, raw))
        can_rows.append((name, can))
    predicted, report_raw = tagkit(train, test)
    raw = score(gold_raw, predicted)
    raw_rows.insert(0, ("tagkit AttributeExtractor (raw labels)", raw))
    mapped = score(gold_can, [_map(p, taxonomy) for p in predicted])  # as the baselines are scored
    can_rows.insert(0, ("tagkit (raw labels, output through taxonomy)", mapped))
    predicted, report_can = tagkit(canonical_products(train, taxonomy), test, taxonomy=taxonomy)
    can = score(gold_can, predicted)
    can_rows.insert(0, ("tagkit AttributeExtractor (canonical labels)", can))
    out["tagkit"] = {"raw": raw, "canonical": can, "canonical_from_raw": mapped, "report_raw": report_raw,
                     "report_canonical": report_can}
    table("torob_attributes, raw names (values by match key)", raw_rows)
    table(f"torob_attributes, canonical (bar {BARS['torob canonical']})", can_rows)
    print(f"tagkit: candidate recall {report_can['candidate_recall']:.3f}, fit {report_can['fit_seconds']} s, "
          f"predict {report_can['predict_seconds']} s for {len(test):,} products")
    per_attribute("torob_attributes, tagkit per attribute (canonical; top 30 by support)", can)
    results["torob_attributes"] = {"train": len(train), "test": len(test), "mapping": mapping, "systems": out}


def _map(predicted: set[Pair], taxonomy: Taxonomy) -> set[Pair]:
    """Baseline pairs through the taxonomy (their values are training values: map the name and the value)."""
    out = set()
    for name, key in predicted:
        tag = taxonomy.canonical(Tag(name, key))
        out.add((tag.name, match_key(tag.value)))
    return out


def run_ae(results: dict) -> None:
    train, asked_train, test, asked_test = ae110k()
    gold = [pairs(p.tags) for p in test]
    print(f"\nae110k: {len(train):,} train / {len(test):,} test products, {sum(map(len, gold)):,} gold pairs; "
          f"{in_title_share(test):.1%} of them in the title")
    rows, out = [], {}
    predicted, report = tagkit(train, test, asked_train, asked_test)
    s = score(gold, predicted)
    rows.append(("tagkit AttributeExtractor", s))
    out["tagkit"] = {"score": s, "report": report}
    for name, run in {
        "logistic regression (one-vs-rest, TF-IDF)": lambda: logistic(train, test, asked_train, asked_test),
        "dictionary match": lambda: dictionary(train, test, asked=asked_test),
        "high-precision dictionary (>= 0.5)": lambda: dictionary(train, test, 0.5, asked=asked_test),
    }.items():
        baseline = score(gold, run())
        rows.append((name, baseline))
        out[name] = {"score": baseline}
    table(f"ae110k (bar {BARS['ae110k']}; published: fine-tuned extractors ~0.80, GPT-4 with demonstrations ~0.85)",
          rows)
    print(f"tagkit: candidate recall {report['candidate_recall']:.3f}, fit {report['fit_seconds']} s")
    per_attribute("ae110k, tagkit per attribute (support >= 5)", s, limit=50, min_support=5)
    results["ae110k"] = {"train": len(train), "test": len(test), "systems": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["torob", "ae110k"])
    args = parser.parse_args()
    results: dict = {}
    if args.only in (None, "torob"):
        run_torob(results)
    if args.only in (None, "ae110k"):
        run_ae(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "attributes.json" if args.only is None else f"attributes-{args.only}.json"
    (RESULTS / name).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
