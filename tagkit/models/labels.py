"""Turn a Dataset's category paths and tags into learning tasks: classes, targets, rare values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tagkit.models.rerank import Hierarchy
from tagkit.product import Tag

NONE_VALUE = "\x00none"
"""The pseudo-value of a single-valued attribute for a tagged product that does not have it."""
MIN_SEVERAL, MIN_SEVERAL_SHARE = 2, 0.005
"""An attribute is multi-valued when this many products, and this share of those that have it, carry several
of its values (Torob's gender: 19 of 2,858, 0.7 %; a fashion colour accepted twice on one product: 1 of 30,921)."""


@dataclass
class SingleTask:
    """One label per product: the category path, or the value of a single-valued attribute."""

    name: str  # "category" or the attribute name
    classes: list  # paths (tuples) for the category; values (str, NONE_VALUE included) for attributes
    y: np.ndarray  # class id per product, -1 = unknown (not used for training)
    hierarchy: Hierarchy | None = None
    thresholds: np.ndarray = field(default_factory=lambda: np.full(3, 0.5, dtype=np.float32))  # per input condition

    @property
    def is_category(self) -> bool:
        return self.name == "category"


@dataclass
class MultiTask:
    """Tags a product can have any number of (plain tags, values of multi-valued attributes)."""

    classes: list[Tag]
    y: np.ndarray  # (n × k) 0/1
    labelled: np.ndarray  # products with at least one tag
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros((3, 0), dtype=np.float32))  # condition × tag


def category_task(categories: list[tuple[str, ...]]) -> SingleTask | None:
    paths = sorted({c for c in categories if c})
    if not paths:
        return None
    index = {p: i for i, p in enumerate(paths)}
    y = np.array([index.get(c, -1) if c else -1 for c in categories], dtype=np.int64)
    depth = max(len(p) for p in paths)
    hierarchy = Hierarchy()
    for level in range(1, depth):
        prefixes = [p[:level] for p in paths]
        ids = {q: i for i, q in enumerate(sorted(set(prefixes)))}
        if len(ids) < 2 or len(ids) == len(paths):
            continue
        hierarchy.parents.append(np.array([ids[q] for q in prefixes], dtype=np.int64))
        hierarchy.sizes.append(len(ids))
    return SingleTask("category", paths, y, hierarchy if hierarchy.parents else None)


@dataclass
class TagPlan:
    single: list[SingleTask]
    multi: MultiTask | None
    multi_valued: list[str]
    rare: dict[str, int]  # "name: value" -> training count, for tags too rare to learn


def tag_tasks(tags: list[tuple[Tag, ...]], min_count: int = 5, known: np.ndarray | None = None) -> TagPlan:
    """Single-valued attributes become one multi-class task each, with a "none" class for tagged products
    without the attribute; plain tags and multi-valued attributes become one multi-label task. An attribute is
    multi-valued when at least `MIN_SEVERAL` products and `MIN_SEVERAL_SHARE` of those that have it carry two or
    more of its values: a stray second value (one review decision) does not make it one, and is not learnt from
    (that product's value is unknown). Values seen fewer than `min_count` times are rare. `known` marks the
    products whose tags are known (default: those with tags); one without tags there has none of them."""
    labelled = np.array([bool(t) for t in tags], dtype=bool) if known is None else np.asarray(known, dtype=bool)
    counts: Counter[Tag] = Counter(t for ts in tags for t in set(ts))
    per_product_names: Counter[str] = Counter()
    several: Counter[str] = Counter()  # products with two or more values of the attribute
    for ts in tags:
        names = Counter(t.name for t in set(ts))
        per_product_names.update(names.keys())
        several.update(name for name, c in names.items() if c > 1)
    multi_names = {""} | {name for name, c in several.items()
                          if c >= MIN_SEVERAL and c >= MIN_SEVERAL_SHARE * per_product_names[name]}
    rare = {str(t): c for t, c in sorted(counts.items()) if c < min_count}
    single = []
    for name in sorted(n for n in per_product_names if n not in multi_names):
        values = sorted(t.value for t, c in counts.items() if t.name == name and c >= min_count)
        if not values:
            continue
        has_none = per_product_names[name] < labelled.sum()
        classes = [*values, NONE_VALUE] if has_none else values
        index = {v: i for i, v in enumerate(classes)}
        y = np.full(len(tags), -1, dtype=np.int64)
        for i, ts in enumerate(tags):
            if not labelled[i]:
                continue
            values = {t.value for t in ts if t.name == name}
            value = values.pop() if len(values) == 1 else NONE_VALUE if not values else None
            y[i] = index.get(value, -1) if value is not None else -1  # a rare value, or several: unknown
        single.append(SingleTask(name, classes, y))
    multi_classes = sorted(t for t, c in counts.items() if t.name in multi_names and c >= min_count)
    multi = None
    if multi_classes:
        index = {t: j for j, t in enumerate(multi_classes)}
        y = np.zeros((len(tags), len(multi_classes)), dtype=np.float32)
        for i, ts in enumerate(tags):
            for t in ts:
                if t in index:
                    y[i, index[t]] = 1.0
        multi = MultiTask(multi_classes, y, labelled)
    return TagPlan(single, multi, sorted(n for n in multi_names if n and n in per_product_names), rare)
