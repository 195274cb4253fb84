"""Evaluation metrics for category paths and tags (used by `tagkit eval` and the benchmarks).

Everything works on plain Python values, so a baseline that is not a tagkit model can be scored the same way:
a category answer is a ranked list of paths (best first), a tag answer is a set of `Tag`s.
Products without a true category (or without any true tag) are left out of that part of the scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tagkit.product import Tag, format_category

if TYPE_CHECKING:
    from tagkit.dataset import Dataset
    from tagkit.models.prediction import Prediction

Path = tuple[str, ...]
SCORE_STEPS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)  # `confidence`: the answers scored at least this much


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def category_metrics(truth: Sequence[Path], ranked: Sequence[Sequence[Path]], *, top_k: int = 3,
                     confused: int = 20) -> dict[str, Any]:
    """Accuracy, top-k accuracy, macro-F1, a per-category table and the most confused pairs.

    `truth[i]` is the true path of product i (`()` = unknown: not scored); `ranked[i]` the predicted paths,
    best first (may be empty: no answer, counted wrong).
    """
    if len(truth) != len(ranked):
        raise ValueError(f"{len(truth)} true categories but {len(ranked)} predictions")
    pairs = [(t, list(r)) for t, r in zip(truth, ranked, strict=True) if t]
    n = len(pairs)
    tp: Counter[Path] = Counter()
    support: Counter[Path] = Counter()
    predicted: Counter[Path] = Counter()
    mistakes: Counter[tuple[Path, Path]] = Counter()
    top1 = topk = 0
    for true, answer in pairs:
        support[true] += 1
        first = answer[0] if answer else None
        if first is not None:
            predicted[first] += 1
        if first == true:
            top1 += 1
            tp[true] += 1
        elif first is not None:
            mistakes[(true, first)] += 1
        if true in answer[:top_k]:
            topk += 1
    per_category = []
    for path in sorted(set(support) | set(predicted)):
        precision = _ratio(tp[path], predicted[path])
        recall = _ratio(tp[path], support[path])
        per_category.append({"category": format_category(path), "support": support[path],
                             "predicted": predicted[path], "precision": precision, "recall": recall,
                             "f1": _f1(precision, recall)})
    scored = [row for row in per_category if row["support"]]
    return {
        "n": n,
        "accuracy": _ratio(top1, n),
        f"top{top_k}": _ratio(topk, n),
        "macro_f1": _ratio(sum(row["f1"] for row in scored), len(scored)),
        "per_category": per_category,
        "confused": [{"true": format_category(t), "predicted": format_category(p), "count": c}
                     for (t, p), c in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))[:confused]],
    }


def tag_metrics(truth: Sequence[Iterable[Tag]], predicted: Sequence[Iterable[Tag]]) -> dict[str, Any]:
    """Micro and macro precision/recall/F1, a per-tag table, Hamming score and exact match.

    Products without any true tag are not scored. Hamming score = mean over products of |Y∩Z| / |Y∪Z|;
    macro averages run over every tag that is true or predicted somewhere.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true tag sets but {len(predicted)} predictions")
    tp: Counter[Tag] = Counter()
    n_true: Counter[Tag] = Counter()
    n_pred: Counter[Tag] = Counter()
    hamming = 0.0
    exact = 0
    n = 0
    for true_tags, pred_tags in zip(truth, predicted, strict=True):
        y, z = set(true_tags), set(pred_tags)
        if not y:
            continue
        n += 1
        n_true.update(y)
        n_pred.update(z)
        tp.update(y & z)
        hamming += len(y & z) / len(y | z)
        exact += y == z
    all_tp, all_true, all_pred = sum(tp.values()), sum(n_true.values()), sum(n_pred.values())
    micro_p, micro_r = _ratio(all_tp, all_pred), _ratio(all_tp, all_true)
    per_tag = []
    for tag in sorted(set(n_true) | set(n_pred)):
        precision, recall = _ratio(tp[tag], n_pred[tag]), _ratio(tp[tag], n_true[tag])
        per_tag.append({"tag": str(tag), "support": n_true[tag], "predicted": n_pred[tag],
                        "precision": precision, "recall": recall, "f1": _f1(precision, recall)})
    k = len(per_tag)
    macro_p = _ratio(sum(r["precision"] for r in per_tag), k)
    macro_r = _ratio(sum(r["recall"] for r in per_tag), k)
    return {
        "n": n,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": _f1(micro_p, micro_r),
        "macro_precision": macro_p,
        "macro_recall": macro_r,
        "macro_f1": _ratio(sum(r["f1"] for r in per_tag), k),
        "hamming_score": _ratio(hamming, n),
        "exact_match": _ratio(exact, n),
        "per_tag": per_tag,
    }


def per_attribute(truth: Sequence[Iterable[Tag]], predicted: Sequence[Iterable[Tag]]) -> dict[str, dict[str, float]]:
    """Micro P/R/F1 for each attribute name separately (plain tags under the name ""), counted as `tag_metrics`
    counts its per-tag rows: over the products with any true tag, a predicted value of an attribute that is not
    true is a false positive of it, also on a product whose labels have no value of that attribute. So the
    per-tag rows of an attribute add up to its row, and all rows to the micro figures.

    Each row: `n` (scored products whose labels have a value of the attribute), `support` (true tags of it),
    `predicted`, `micro_precision`, `micro_recall`, `micro_f1`. An attribute true or predicted somewhere has a row.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true tag sets but {len(predicted)} predictions")
    tp: Counter[str] = Counter()
    n_true: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    products: Counter[str] = Counter()
    for true_tags, pred_tags in zip(truth, predicted, strict=True):
        y, z = set(true_tags), set(pred_tags)
        if not y:  # not scored, as in tag_metrics
            continue
        products.update({t.name for t in y})
        n_true.update(t.name for t in y)
        n_pred.update(t.name for t in z)
        tp.update(t.name for t in y & z)
    out = {}
    for name in sorted(set(n_true) | set(n_pred)):
        precision, recall = _ratio(tp[name], n_pred[name]), _ratio(tp[name], n_true[name])
        out[name] = {"n": products[name], "support": n_true[name], "predicted": n_pred[name],
                     "micro_precision": precision, "micro_recall": recall, "micro_f1": _f1(precision, recall)}
    return out


def confidence(scores: Sequence[float], right: Sequence[bool], *, bins: int = 10) -> dict[str, Any]:
    """How far scores can be taken at their word. `ece` (expected calibration error): the gap between the mean
    score and the share right in each of `bins` equal-width score bins, averaged with the bins' sizes as weights
    (0: a score of 0.8 is right 8 times in 10). `at_least`: for each step of SCORE_STEPS, the share of the
    answers scored at least that much and the share of those that are right (what accepting every answer from
    that score on would give). Ratios over no answers are None."""
    if len(scores) != len(right):
        raise ValueError(f"{len(scores)} scores but {len(right)} right/wrong marks")
    pairs = list(zip(scores, right, strict=True))
    n = len(pairs)
    score_sum: Counter[int] = Counter()
    right_sum: Counter[int] = Counter()
    for score, is_right in pairs:
        b = min(max(int(score * bins), 0), bins - 1)  # [b/bins, (b+1)/bins), 1.0 in the last bin
        score_sum[b] += score
        right_sum[b] += is_right
    gap = sum(abs(score_sum[b] - right_sum[b]) for b in score_sum) / n if n else None
    at_least = []
    for step in SCORE_STEPS:
        kept = [is_right for score, is_right in pairs if score >= step]
        at_least.append({"score": step, "n": len(kept), "share": len(kept) / n if n else None,
                         "accuracy": sum(kept) / len(kept) if kept else None})
    return {"n": n, "mean_score": sum(s for s, _ in pairs) / n if n else None,
            "accuracy": sum(r for _, r in pairs) / n if n else None, "ece": gap,
            "at_least": at_least}


def evaluate(data: Dataset, predictions: Sequence[Prediction], *, top_k: int = 3) -> dict[str, Any]:
    """Score a model's predictions against the labels in `data` (aligned, same order); `confidence` of the
    category scores (of the products with a true category that got one) and of the accepted tags' scores (of the
    products that `tag_metrics` scores) goes under `category` and `tags`."""
    if len(data) != len(predictions):
        raise ValueError(f"{len(data)} products but {len(predictions)} predictions")
    ranked = [([p.category] if p.category else []) + [path for path, _ in p.alternatives] for p in predictions]
    accepted = [[tag for tag, _ in p.tags] for p in predictions]
    answered = [(p.category_score, p.category == true) for p, true in zip(predictions, data.categories, strict=True)
                if true and p.category]
    tagged = [(score, tag in truth) for p, true in zip(predictions, data.tags, strict=True) if true
              for truth in [set(true)] for tag, score in p.tags]
    return {
        "category": {**category_metrics(data.categories, ranked, top_k=top_k),
                     "confidence": confidence(*_columns(answered))},
        "tags": {**tag_metrics(data.tags, accepted), "confidence": confidence(*_columns(tagged))},
        "tags_by_attribute": per_attribute(data.tags, accepted),
    }


def _columns(pairs: list[tuple[float, bool]]) -> tuple[list[float], list[bool]]:
    return [float(s) for s, _ in pairs], [r for _, r in pairs]


def summary(result: dict[str, Any], top_k: int = 3) -> dict[str, float]:
    """The headline numbers of `evaluate`'s result, flat."""
    cat, tags = result["category"], result["tags"]
    return {"category_top1": cat["accuracy"], f"category_top{top_k}": cat[f"top{top_k}"],
            "category_macro_f1": cat["macro_f1"], "tag_micro_f1": tags["micro_f1"],
            "tag_macro_f1": tags["macro_f1"], "hamming": tags["hamming_score"]}
