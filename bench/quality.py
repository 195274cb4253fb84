"""Quality benchmark: tagkit's CatalogueModel against simple baselines on the same fixed splits.

    .venv/bin/python bench/quality.py                 # fashion (title+image, image only) and Torob titles
    .venv/bin/python bench/quality.py --only fashion

Fashion: 80/20 split by a hash of the product id; category = masterCategory > subCategory > articleType;
tags = color + usage. "image only" removes the titles of the test products (models trained as usual).
Torob titles: stratified 80/20 split, titles only. Baselines: inverse-distance kNN (K=5) on image
embeddings; TF-IDF (word 1-2 + char 2-5) + LinearSVC on titles; LinearSVC on concatenated TF-IDF + image
embedding. For tagkit also the calibration error (ECE over 10 score bins, `tagkit.models.metrics.confidence`) of
its category scores and of its accepted tags' scores. Prints a table and writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import CACHE, RESULTS, fashion_dataset, split_by_id, stratified_split, torob_titles_dataset

from tagkit.dataset import Dataset
from tagkit.models import CatalogueModel
from tagkit.models.knn import votes
from tagkit.models.metrics import category_metrics, evaluate, tag_metrics
from tagkit.models.text_features import TextFeatures
from tagkit.product import Tag

BARS = {
    ("fashion", "title+image"): {"category_top1": 0.98, "category_top3": 0.995, "tag_micro_f1": 0.95},
    ("fashion", "image only"): {"category_top1": 0.86, "category_top3": 0.97, "tag_micro_f1": 0.80},
    ("torob_titles", "titles"): {"category_top1": 0.975},
}


# -- baselines ---------------------------------------------------------------------------------------

class Labels:
    """Class ids for the category and for each attribute of the training products (one value each)."""

    def __init__(self, train: Dataset) -> None:
        self.paths = sorted({c for c in train.categories if c})
        self.y = np.array([self.paths.index(c) if c else -1 for c in train.categories])
        names = sorted({t.name for ts in train.tags for t in ts})
        self.values = {n: sorted({t.value for ts in train.tags for t in ts if t.name == n}) for n in names}
        self.tag_y = {n: np.array([vals.index(next((t.value for t in ts if t.name == n), vals[0]))
                                   if any(t.name == n for t in ts) else -1 for ts in train.tags])
                      for n, vals in self.values.items()}

    def answer(self, cat_scores: np.ndarray | None, tag_scores: dict[str, np.ndarray], n: int):
        ranked = [[self.paths[c] for c in np.argsort(-row)[:3]] for row in cat_scores] if cat_scores is not None \
            else [[] for _ in range(n)]
        tags = [[Tag(name, self.values[name][int(np.argmax(s[i]))]) for name, s in tag_scores.items()]
                for i in range(n)]
        return ranked, tags


def network_part(data: Dataset) -> np.ndarray:
    """The image model's unit-length embeddings, without the colour features stored after them: what the
    baselines are defined on."""
    return data.embeddings[:, : data.embeddings.shape[1] - data.colour_dim]


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), dtype=np.float32)
    out[np.flatnonzero(y >= 0), y[y >= 0]] = 1
    return out


class KnnBaseline:
    """Inverse-distance-weighted kNN (K=5) on the raw (L2-normalised) embeddings; no image = no answer."""

    def __init__(self, train: Dataset, k: int = 5) -> None:
        self.labels, self.k = Labels(train), k
        self.rows = np.flatnonzero(train.has_image)
        self.e = network_part(train)[self.rows]

    def predict(self, test: Dataset):
        labels, k, rows = self.labels, self.k, self.rows
        sims = network_part(test) @ self.e.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.maximum(2 - 2 * np.take_along_axis(sims, idx, 1), 0))
        w = 1 / (dist + 1e-3)
        w /= w.sum(1, keepdims=True)
        cat = votes(idx, w, one_hot(labels.y[rows], len(labels.paths)))
        tags = {n: votes(idx, w, one_hot(y[rows], len(labels.values[n]))) for n, y in labels.tag_y.items()}
        ranked, tag_sets = labels.answer(cat, tags, len(test))
        none = ~test.has_image
        return _blank(ranked, tag_sets, none)


def _blank(ranked, tag_sets, none):
    return [[] if none[i] else r for i, r in enumerate(ranked)], [[] if none[i] else t for i, t in enumerate(tag_sets)]


class LinearBaseline:
    """LinearSVC (C=0.5) on TF-IDF titles (image_weight None) or on [TF-IDF, image_weight * embedding]."""

    def __init__(self, train: Dataset, image_weight: float | None) -> None:
        self.labels, self.image_weight = Labels(train), image_weight
        self.feats = TextFeatures(boundaries=False)  # the baseline as defined: plain word 1-2 + char 2-5
        norm, _ = TextFeatures.prepare(train.texts)
        self.feats.fit([t for t in norm if t])
        x = self._x(train, norm)
        self.svms = {"": self._svm(x, self.labels.y)} if self.labels.paths else {}
        self.svms.update({n: self._svm(x, y) for n, y in self.labels.tag_y.items()})

    def _x(self, data: Dataset, norm):
        x = self.feats.transform(norm)
        if self.image_weight is not None:
            x = sp.hstack([x, sp.csr_matrix(self.image_weight * network_part(data))], format="csr")
        return x

    @staticmethod
    def _svm(x, y):
        rows = np.flatnonzero(y >= 0)
        return LinearSVC(C=0.5, random_state=0).fit(x[rows], y[rows])

    def _scores(self, name: str, x, k: int) -> np.ndarray:
        svm = self.svms[name]
        d = svm.decision_function(x)
        if d.ndim == 1:
            d = np.stack([-d, d], 1)
        out = np.full((x.shape[0], k), -10.0, dtype=np.float32)
        out[:, svm.classes_] = d
        return out

    def predict(self, test: Dataset):
        labels = self.labels
        norm, has_text = TextFeatures.prepare(test.texts)
        x = self._x(test, norm)
        cat = self._scores("", x, len(labels.paths)) if labels.paths else None
        tags = {n: self._scores(n, x, len(labels.values[n])) for n in labels.tag_y}
        ranked, tag_sets = labels.answer(cat, tags, len(test))
        none = ~has_text if self.image_weight is None else ~(has_text | test.has_image)
        return _blank(ranked, tag_sets, none)


def score(test: Dataset, ranked, tag_sets) -> dict[str, float]:
    cat = category_metrics(test.categories, ranked)
    out = {"category_top1": cat["accuracy"], "category_top3": cat["top3"], "category_macro_f1": cat["macro_f1"]}
    if any(test.tags):
        out["tag_micro_f1"] = tag_metrics(test.tags, tag_sets)["micro_f1"]
    return out


def score_model(test: Dataset, model: CatalogueModel) -> dict[str, float]:
    start = time.perf_counter()
    preds = model.predict(test)
    seconds = time.perf_counter() - start
    result = evaluate(test, preds)
    out = {"category_top1": result["category"]["accuracy"], "category_top3": result["category"]["top3"],
           "category_macro_f1": result["category"]["macro_f1"],
           "category_ece": result["category"]["confidence"]["ece"]}
    if any(test.tags):
        out["tag_micro_f1"] = result["tags"]["micro_f1"]
        out["tag_ece"] = result["tags"]["confidence"]["ece"]
        out.update({f"{name}_f1": v["micro_f1"] for name, v in result["tags_by_attribute"].items()})
    out["predict_per_s"] = len(test) / seconds
    return out


# -- runs ----------------------------------------------------------------------------------------------

def run_fashion(params: dict) -> dict:
    data = fashion_dataset()
    test_mask = split_by_id(data.ids)
    train, test = data.subset(np.flatnonzero(~test_mask)), data.subset(np.flatnonzero(test_mask))
    print(f"fashion: {len(train)} train, {len(test)} test products")
    results: dict[str, dict[str, dict]] = defaultdict(dict)
    start = time.perf_counter()
    model = CatalogueModel(seed=0, **params).fit(train)
    fit_s = time.perf_counter() - start
    model.save(CACHE / "fashion-model")
    baselines = {"knn K=5 (image)": KnnBaseline(train), "tfidf+LinearSVC (title)": LinearBaseline(train, None),
                 "LinearSVC (title+image)": LinearBaseline(train, 1.0)}
    settings = (("title+image", test), ("image only", test.without_text()), ("title only", test.without_images()))
    for setting, t in settings:
        results[setting]["tagkit"] = score_model(t, model)
        for name, baseline in baselines.items():
            results[setting][name] = score(t, *baseline.predict(t))
    return {"results": results, "fit_seconds": fit_s, "report": _short_report(model.report),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_torob_titles(params: dict) -> dict:
    data = torob_titles_dataset()
    test_mask = stratified_split(data.ids, data.categories)
    train, test = data.subset(np.flatnonzero(~test_mask)), data.subset(np.flatnonzero(test_mask))
    print(f"torob_titles: {len(train)} train, {len(test)} test products")
    start = time.perf_counter()
    model = CatalogueModel(seed=0, **params).fit(train)
    fit_s = time.perf_counter() - start
    results = {"titles": {"tagkit": score_model(test, model),
                          "tfidf+LinearSVC (title)": score(test, *LinearBaseline(train, None).predict(test))}}
    return {"results": results, "fit_seconds": fit_s, "report": _short_report(model.report)}


def _short_report(report: dict) -> dict:
    keep = ("products", "validation", "thresholds", "rounds", "temperatures", "candidate_recall", "classes",
            "seconds", "tags_too_rare")
    out = {k: report[k] for k in keep if k in report}
    if isinstance(out.get("thresholds", {}).get("tags"), dict):
        out["thresholds"] = {k: v for k, v in out["thresholds"].items() if k != "tags"}
    return out


def print_table(name: str, run: dict) -> None:
    columns = ["category_top1", "category_top3", "category_macro_f1", "tag_micro_f1", "category_ece", "tag_ece"]
    print(f"\n{name} (tagkit fit {run['fit_seconds']:.0f} s)")
    print(f"{'setting':<13} {'model':<26} " + " ".join(f"{c:>17}" for c in columns))
    for setting, rows in run["results"].items():
        bars = BARS.get((name, setting), {})
        for model, m in rows.items():
            cells = []
            for c in columns:
                v = m.get(c)
                mark = ""
                if model == "tagkit" and c in bars and v is not None:
                    mark = " ok" if v >= bars[c] else f" <{bars[c]}"
                cells.append(f"{'-' if v is None else f'{v:.4f}'}{mark:>7}".rjust(17))
            print(f"{setting:<13} {model:<26} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["fashion", "torob_titles"], action="append")
    parser.add_argument("--params", default="{}", help="CatalogueModel parameters as JSON")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    args = parser.parse_args()
    params = json.loads(args.params)
    runs = {}
    for name, fn in (("fashion", run_fashion), ("torob_titles", run_torob_titles)):
        if args.only and name not in args.only:
            continue
        runs[name] = fn(params)
        print_table(name, runs[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"params": params, "runs": runs}, indent=1, ensure_ascii=False, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
