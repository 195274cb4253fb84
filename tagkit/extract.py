"""Attribute values from product titles (Torob style `name: value`): candidates, then a learned scorer.

Candidates for a product come from three places:

1. **dictionary**: spans of the normalised title (up to `max_span` tokens, never across punctuation) equal to
   a value (or a synonym) the training labels or the taxonomy know for an attribute. Spans and values are
   compared by `tagkit.text.match_key`, so half-space/space, Persian/Latin digits, Arabic/Persian letters and
   case do not matter, and multi-word values (`آستین بلند`, `Navy Blue`) are matched whole.
2. **open spans**: spans never seen as a value, for the attributes whose values keep being new (brands,
   sizes, model codes, designs): spans whose words, preceding word (`طرح ...`, `برند ...`), first or last word
   or shape (`9a` for `85mm`, `a9a` for `YA205a`) are what that attribute's values look like in training.
3. **neighbours**: values the most similar training titles (and images, when there are) carry, for values a
   title does not write (gender from context, a colour from the picture).

Each candidate gets features (the attribute; how often the value was that attribute's, in training and
when its span was in a title; position and length of the span; its script and shape; how often its words,
the word before and after, its first and last word were part of such values; the attribute's rate given
the title's first word, a stand-in for the product type; the neighbours' votes) and a LightGBM classifier
scores it. Features of training products are computed out of fold (from the other folds' labels), like a
new product's. A candidate is kept when its score passes its attribute's threshold (tuned on out-of-fold
scores for micro-F1); a single-valued attribute keeps one value; kept spans do not overlap.
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagkit.cpus import one_blas_thread, usable_cpus
from tagkit.dataset import Dataset
from tagkit.models.booster import load_booster
from tagkit.models.text_features import Tfidf
from tagkit.product import Tag
from tagkit.taxonomy import Taxonomy
from tagkit.text import match_key, normalize, spelling_key, tokens

if TYPE_CHECKING:
    import lightgbm as lgb

SAVED_FILE = "extractor.pickle.gz"
ANY = "\x00any"  # the pseudo-attribute "some attribute" in the counts
_BREAKS = re.compile(r"(?<!\d)[,،](?!\d)|[()\[\]{}|؛;!?«»\"…*]|(?:^|\s)[-–—:+/]+(?=\s|$)")
_EDGE = re.compile(r"^[^\w\u200c]+|[^\w\u200c]+$")
_SHAPES = [(re.compile(r"[0-9]+"), "9"), (re.compile(r"[a-z]+"), "a"), (re.compile(r"[\u0600-\u06ff]+"), "پ")]
SOURCES = ("dictionary", "open", "neighbours")


# ----------------------------------------------------------------------------------------------------
# Titles


@dataclass(frozen=True)
class Title:
    """A title as tokens (match-key tokens), with the words they came from and where punctuation breaks it."""

    keys: tuple[str, ...]
    word_of: tuple[int, ...]  # word index of each token
    words: tuple[str, ...]  # each word as written (normalised, edge punctuation removed)
    breaks: frozenset[int]  # token positions with punctuation (or the start) before them
    kind: str = ""  # the product's category (its last level's match key), when it has one
    written: str = ""  # the title by spelling key, between spaces (`_written_form`): how it writes a value

    @property
    def head(self) -> str:
        """The first token: in product titles nearly always the product type (`کفش`, `Men`...)."""
        return self.keys[0] if self.keys else ""

    def spans(self, max_len: int) -> list[tuple[int, int]]:
        """Token spans (start, end) of up to `max_len` tokens that do not cross punctuation."""
        out = []
        for i in range(len(self.keys)):
            for j in range(i + 1, min(len(self.keys), i + max_len) + 1):
                if j - 1 > i and (j - 1) in self.breaks:
                    break
                out.append((i, j))
        return out

    def key(self, i: int, j: int) -> str:
        return " ".join(self.keys[i:j])

    def surface(self, i: int, j: int) -> str:
        """The span as written: whole words as they are, parts of a word by their tokens."""
        parts: list[str] = []
        for w in dict.fromkeys(self.word_of[i:j]):
            inside = [t for t in range(i, j) if self.word_of[t] == w]
            whole = [t for t in range(len(self.keys)) if self.word_of[t] == w]
            parts.append(self.words[w] if inside == whole else " ".join(self.keys[t] for t in inside))
        return " ".join(parts)


def parse_title(text: str) -> Title:
    """Tokens of a title (its first 64), with their words and the punctuation breaks between them."""
    written = _written_form(text)
    text = _BREAKS.sub(" | ", normalize(text).replace("\n", " | "))
    keys: list[str] = []
    word_of: list[int] = []
    words: list[str] = []
    breaks = {0}
    for raw in text.split():
        word = _EDGE.sub("", raw)
        parts = tokens(word) if word else []
        if not parts:
            breaks.add(len(keys))
            continue
        if raw[0] != word[0]:
            breaks.add(len(keys))
        words.append(word)
        for part in parts:
            keys.append(part)
            word_of.append(len(words) - 1)
        if raw[-1] != word[-1]:
            breaks.add(len(keys))
        if len(keys) >= 64:
            break
    return Title(tuple(keys[:64]), tuple(word_of[:64]), tuple(words), frozenset(breaks), written=written)


def _written_form(title: str) -> str:
    """A title by spelling key, between spaces: `f" {way} " in form` says whether it writes a value that way
    (`-1.5`, `Men's`: signs and marks kept, which tokens and match keys leave out)."""
    return f" {spelling_key(title)} "


def find_spans(title: Title, key: str) -> list[tuple[int, int]]:
    """Where the value with match key `key` occurs in the title, as token spans."""
    target = key.split()
    n = len(target)
    if not n:
        return []
    return [(i, i + n) for i in range(len(title.keys) - n + 1) if list(title.keys[i : i + n]) == target]


def shape(key: str) -> str:
    """The shape of a span's key: digits -> 9, Latin letters -> a, Persian letters -> پ (`85mm` -> `9a`)."""
    out = key
    for pattern, mark in _SHAPES:
        out = pattern.sub(mark, out)
    return out


def _suffix(key: str) -> str:
    return key.split()[-1][-2:] if key else ""


# ----------------------------------------------------------------------------------------------------
# Counts: how often each feature value went with each attribute in training, per fold


class _Counts:
    """Numerators num[(feature, attribute, value)] and denominators den[(feature, value)] of the encodings."""

    def __init__(self) -> None:
        self.num: Counter[tuple[str, str, str]] = Counter()
        self.den: Counter[tuple[str, str]] = Counter()

    def add(self, other: _Counts) -> None:
        self.num.update(other.num)
        self.den.update(other.den)


class _View:
    """The counts of every training product except one fold (or all of them). Rates and the attributes a value
    is known for are kept once worked out: the same few thousand come up title after title."""

    def __init__(self, total: _Counts, minus: _Counts | None = None) -> None:
        self.total = total
        self.minus = minus
        self.rates: dict[tuple[str, str, str], float] = {}
        self.known: dict[str, dict[str, float]] = {}  # filled by AttributeExtractor._known

    def num(self, feature: str, attribute: str, value: str) -> float:
        key = (feature, attribute, value)
        return self.total.num.get(key, 0) - (self.minus.num.get(key, 0) if self.minus else 0)

    def den(self, feature: str, value: str) -> float:
        key = (feature, value)
        return self.total.den.get(key, 0) - (self.minus.den.get(key, 0) if self.minus else 0)

    def rate(self, feature: str, attribute: str, value: str) -> float:
        """How often `value` of `feature` went with `attribute`: num / (den + 1)."""
        key = (feature, attribute, value)
        rate = self.rates.get(key)
        if rate is None:
            rate = self.rates[key] = self.num(feature, attribute, value) / (self.den(feature, value) + 1.0)
        return rate


_SPAN_FEATURES = ("span", "prev", "next", "first", "last", "shape", "suffix")
_OPEN_FEATURES = ("prev", "first", "last", "shape")


def _span_values(title: Title, i: int, j: int) -> dict[str, str]:
    key = title.key(i, j)
    return {
        "span": key,
        "prev": title.keys[i - 1] if i > 0 and i not in title.breaks else "^",
        "next": title.keys[j] if j < len(title.keys) and j not in title.breaks else "$",
        "first": title.keys[i],
        "last": title.keys[j - 1],
        "shape": shape(key),
        "suffix": _suffix(key),
    }


def _product_counts(title: Title, gold: dict[str, set[str]], max_span: int) -> _Counts:
    """The counts one labelled product adds: every span's feature values (denominators), and for each gold
    value found in the title, its attribute with those values (numerators)."""
    counts = _Counts()
    seen: set[tuple[str, str]] = set()
    for i, j in title.spans(max_span):
        for feature, value in _span_values(title, i, j).items():
            if feature == "span":
                seen.add((feature, value))
            else:
                counts.den[(feature, value)] += 1
    counts.den.update(seen)
    for key in title.keys:
        counts.den[("tok", key)] += 1
    counts.den[("head", title.head)] += 1
    counts.den[("kind", title.kind)] += 1
    for attribute, keys in gold.items():
        counts.num[("head", attribute, title.head)] += 1
        counts.num[("kind", attribute, title.kind)] += 1
        counts.num[("has", attribute, "")] += 1
        for key in keys:
            counts.num[("gold", attribute, key)] += 1
            counts.num[("gold", ANY, key)] += 1
            counts.num[("kindval", attribute, key + "\x00" + title.kind)] += 1
            found = find_spans(title, key)
            if found:
                counts.num[("span", attribute, key)] += 1
            for i, j in found[:1]:
                for feature, value in _span_values(title, i, j).items():
                    if feature != "span":
                        counts.num[(feature, attribute, value)] += 1
                for t in range(i, j):
                    counts.num[("tok", attribute, title.keys[t])] += 1
                    counts.num[("tok", ANY, title.keys[t])] += 1
    counts.den[("products", "")] += 1
    return counts


# ----------------------------------------------------------------------------------------------------
# The extractor


@dataclass
class Extraction:
    """What the extractor says about one product: the kept tags and the best of the rest, with scores."""

    tags: list[tuple[Tag, float]] = field(default_factory=list)
    candidates: list[tuple[Tag, float]] = field(default_factory=list)
    as_written: set[Tag] = field(default_factory=set)  # kept tags spelt as the labels do for the title's way


@dataclass
class _Candidate:
    attribute: str
    key: str
    span: tuple[int, int] | None
    source: int
    text: str  # the value as it will be output
    as_written: bool = False  # `text` is the labels' spelling for the way the title writes it


class AttributeExtractor:
    """Learns to fill in attribute values from titles; `fit(dataset)`, then `predict(dataset)`.

    Parameters: `seed`; `max_span` (longest value, in tokens); `folds` (for out-of-fold features and scores);
    `neighbours` (K of the title and image neighbour votes); `open_share` (an attribute whose training values
    were new at least this often, out of fold, gets open-span candidates); `open_per_attribute` (open-span
    candidates kept per attribute and product); `rounds`, `learning_rate`, `num_leaves` (LightGBM);
    `use_taxonomy_values` (match the taxonomy's values and synonyms too, not only the training labels');
    `skip_attributes` (not learnt). Labels are read as given: pass canonical tags (a taxonomy applied at
    import) to learn one vocabulary.
    """

    def __init__(self, seed: int = 0, *, max_span: int = 6, folds: int = 4, neighbours: int = 10,
                 open_share: float = 0.1, open_per_attribute: int = 8, rounds: int = 400,
                 learning_rate: float = 0.05, num_leaves: int = 31, use_taxonomy_values: bool = True,
                 skip_attributes: Collection[str] = (), n_jobs: int = 1) -> None:
        self.seed = seed
        self.max_span = max_span
        self.folds = folds
        self.neighbours = neighbours
        self.open_share = open_share
        self.open_per_attribute = open_per_attribute
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.use_taxonomy_values = use_taxonomy_values
        self.skip_attributes = tuple(skip_attributes)
        self.n_jobs = n_jobs
        self.report: dict[str, Any] = {}
        # (attribute, value key) -> spelling key -> the labels' spelling, for a value the labels write in ways that
        # differ by more than spelling (`Men` / `Men's`): the one the title writes is output
        self.written: dict[tuple[str, str], dict[str, str]] = {}

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, data: Dataset, taxonomy: Taxonomy | None = None,
            attributes: Sequence[Collection[str] | None] | None = None) -> AttributeExtractor:
        """Learn from the tagged products of `data` (a product with tags, none of them of an attribute it learns,
        teaches that its title has no values). `attributes[i]`, when given, names the attributes product i was
        labelled for (values of the others are not known, not absent); None = all."""
        import lightgbm as lgb

        self.taxonomy = taxonomy
        skip = {match_key(s) for s in self.skip_attributes}
        rows = [i for i, tags in enumerate(data.tags) if tags or (attributes is not None and attributes[i])]
        titles = [_parse(data.texts[i], data.categories[i]) for i in rows]
        golds = [self._gold(data.tags[i], skip) for i in rows]
        allowed = [None if attributes is None else attributes[i] for i in rows]
        self.golds = golds
        fold = np.array([zlib.crc32(f"fold{self.seed}{data.ids[i]}".encode()) % self.folds for i in rows])
        self._learn_vocabulary(data, rows, golds, taxonomy)

        per_fold = [_Counts() for _ in range(self.folds)]
        for f, title, gold in zip(fold, titles, golds, strict=True):
            per_fold[f].add(_product_counts(title, gold, self.max_span))
        self.counts = _Counts()
        for counts in per_fold:
            self.counts.add(counts)
        views = [_View(self.counts, per_fold[f]) for f in range(self.folds)]
        self._learn_open(golds, fold, views)

        self.fold = fold
        self.vectorizer = Tfidf.fit([_title_terms(t) for t in titles], "given_terms")
        self.x_train = self._tfidf(titles)
        has_image = data.has_image[rows]
        self.images = _unit(data.embeddings[rows]) if has_image.sum() >= 20 else None
        self.has_image_train = has_image
        votes = self._votes(self.x_train, self.images, has_image if self.images is not None else None, fold=fold)

        candidates, features, labels, owners = [], [], [], []
        for n, (title, gold) in enumerate(zip(titles, golds, strict=True)):
            view = views[fold[n]]
            cands = self._candidates(title, view, votes[n], allowed[n])
            if not cands:
                continue
            candidates.append(cands)
            owners.append(n)
            features.append(self._features(title, cands, view, votes[n]))
            labels.extend(int(c.key in gold.get(c.attribute, ())) for c in cands)
        x = np.vstack(features)
        y = np.array(labels, dtype=np.float32)
        sizes = [len(c) for c in candidates]
        cand_fold = np.repeat(fold[owners], sizes)
        n_gold = sum(len(keys) for gold in golds for keys in gold.values())
        self.report = {"products": len(rows), "candidates": len(y), "positives": int(y.sum()),
                       "gold_values": n_gold, "candidate_recall": round(float(y.sum()) / max(n_gold, 1), 4),
                       "attributes": len(self.attribute_ids), "open_attributes": sorted(self.open)}

        params = {"objective": "binary", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                  "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                  "lambda_l2": 1.0, "seed": self.seed, "num_threads": self.n_jobs, "verbose": -1,
                  "deterministic": True, "force_row_wise": True}
        oof = np.zeros(len(y), dtype=np.float32)
        best_rounds = []
        fold_boosters: dict[int, tuple[lgb.Booster, int | None]] = {}
        for f in range(self.folds):
            tr, va = cand_fold != f, cand_fold == f
            if not va.any() or y[tr].sum() == 0:
                continue
            train_set = lgb.Dataset(x[tr], y[tr], categorical_feature=[0], free_raw_data=True)
            valid_set = lgb.Dataset(x[va], y[va], reference=train_set)
            booster = lgb.train(params, train_set, num_boost_round=self.rounds, valid_sets=[valid_set],
                                callbacks=[lgb.early_stopping(30, verbose=False)])
            best_rounds.append(booster.best_iteration or self.rounds)
            oof[va] = booster.predict(x[va], num_iteration=booster.best_iteration)
            fold_boosters[f] = (booster, booster.best_iteration)
        rounds = int(np.mean(best_rounds)) if best_rounds else self.rounds
        self.booster: lgb.Booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[0]),
                                              num_boost_round=max(rounds, 20))
        offsets = np.cumsum([0, *sizes])
        self.thresholds, self.threshold = self._tune(
            candidates, [oof[offsets[k] : offsets[k + 1]] for k in range(len(candidates))],
            [golds[n] for n in owners], n_gold)
        self.report.update({"rounds": rounds, "threshold": round(self.threshold, 3),
                            "thresholds": {a: round(t, 3) for a, t in sorted(self.thresholds.items())}})
        self.report["out_of_fold"] = self._out_of_fold(
            candidates, [oof[offsets[k] : offsets[k + 1]] for k in range(len(candidates))], owners, golds)
        # for `predict_out_of_fold`, until the extractor is saved (not saved: they only serve this fit's products)
        self._held_out = {"ids": {data.ids[i]: n for n, i in enumerate(rows)}, "views": views,
                          "boosters": fold_boosters}
        return self

    def predict_out_of_fold(self, data: Dataset) -> list[Extraction]:
        """Like `predict`, for products this extractor was just fitted on (by id), but each one read as its own
        fold's model reads it: counts, neighbours and scorer fitted without that fold, and the tuned thresholds.
        `data` may give them other categories than their labels (another model's predicted product type). Only
        right after `fit` (a loaded extractor has no folds); a product that was not in the fit, or whose fold
        had no scorer of its own, is read as `predict` reads it."""
        held = getattr(self, "_held_out", None)
        if held is None:
            raise RuntimeError("predict_out_of_fold needs the folds of a fit: this extractor was loaded")
        titles = [_parse(text, category) for text, category in zip(data.texts, data.categories, strict=True)]
        fold = np.array([self.fold[held["ids"][pid]] if pid in held["ids"] else -1 for pid in data.ids], dtype=int)
        fold = np.where([f in held["boosters"] for f in fold], fold, -1)
        whole = _View(self.counts)
        x = self._tfidf(titles)
        images = _unit(data.embeddings) if self.images is not None else None
        votes = self._votes(x, images, data.has_image if images is not None else None, fold=fold)
        out: list[Extraction] = []
        for n, title in enumerate(titles):
            view = held["views"][fold[n]] if fold[n] >= 0 else whole
            cands = self._candidates(title, view, votes[n], None) if title.keys or votes[n] else []
            if not cands:
                out.append(Extraction())
                continue
            booster, rounds = held["boosters"].get(int(fold[n]), (self.booster, None))
            out.append(self._extraction(cands, booster.predict(self._features(title, cands, view, votes[n]),
                                                               num_iteration=rounds)))
        return out

    def _out_of_fold(self, candidates: list[list[_Candidate]], scores: list[np.ndarray], owners: list[int],
                     golds: list[dict[str, set[str]]]) -> dict[str, Any]:
        """Micro and per-attribute precision, recall and F1 of the tuned decisions on the out-of-fold scores of
        the training products (the thresholds were tuned on them: a little optimistic)."""
        hits: Counter[str] = Counter()
        kept: Counter[str] = Counter()
        support: Counter[str] = Counter({a: 0 for a in self.attribute_ids})
        for gold in golds:
            support.update({a: len(keys) for a, keys in gold.items()})
        for cands, oof, n in zip(candidates, scores, owners, strict=True):
            for k in self._decode(cands, oof, self.thresholds, self.threshold)[0]:
                kept[cands[k].attribute] += 1
                hits[cands[k].attribute] += int(cands[k].key in golds[n].get(cands[k].attribute, ()))

        def prf(tp: int, predicted: int, gold: int) -> dict[str, float]:
            p, r = tp / predicted if predicted else 0.0, tp / gold if gold else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}

        by_attribute = {a: {"support": support[a], **prf(hits[a], kept[a], support[a])}
                        for a in sorted(support, key=lambda a: (-support[a], a))}
        return {**prf(sum(hits.values()), sum(kept.values()), sum(support.values())), "attributes": by_attribute}

    def _gold(self, tags: Iterable[Tag], skip: set[str]) -> dict[str, set[str]]:
        gold: dict[str, set[str]] = defaultdict(set)
        for tag in tags:
            if tag.name and match_key(tag.name) not in skip:
                key = match_key(tag.value)
                if key:
                    gold[tag.name].add(key)
        return dict(gold)

    def _learn_vocabulary(self, data: Dataset, rows: list[int], golds: list[dict[str, set[str]]],
                          taxonomy: Taxonomy | None) -> None:
        """Attributes, their arity, and how each (attribute, value key) is written on output."""
        spellings: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        several: Counter[str] = Counter()
        having: Counter[str] = Counter()
        for i, gold in zip(rows, golds, strict=True):
            for tag in data.tags[i]:
                if tag.name in gold:
                    spellings[(tag.name, match_key(tag.value))][tag.value] += 1
            for attribute, keys in gold.items():
                having[attribute] += 1
                several[attribute] += len(keys) > 1
        self.display = {pair: counts.most_common(1)[0][0] for pair, counts in spellings.items()}
        self.written = self._learn_written(data, rows, spellings)
        self.attribute_ids = {a: n for n, a in enumerate(sorted(having))}
        self.multi = {a: several[a] >= max(2, 0.05 * having[a]) for a in having}
        self.extra_values: dict[str, set[str]] = defaultdict(set)  # value key -> attributes (taxonomy only)
        if taxonomy is not None:
            for attribute in taxonomy.attributes:
                if attribute.name in self.multi:
                    self.multi[attribute.name] = attribute.multi_valued
                if attribute.name not in self.attribute_ids or not self.use_taxonomy_values:
                    continue
                for value in attribute.values:
                    for text in (value.name, *value.synonyms):
                        if ": " not in text:
                            self.extra_values[match_key(text)].add(attribute.name)
                            self.display.setdefault((attribute.name, match_key(text)), value.name)
        self.values_of: dict[str, set[str]] = defaultdict(set)  # value key -> attributes (training)
        for attribute, key in spellings:
            self.values_of[key].add(attribute)

    @staticmethod
    def _learn_written(data: Dataset, rows: list[int], spellings: dict[tuple[str, str], Counter[str]]
                       ) -> dict[tuple[str, str], dict[str, str]]:
        """For a value the labels write in ways that differ by more than spelling (`Men` / `Men's`, one match key):
        the labels' most common spelling of it in the products whose title writes it each way (by spelling key).
        A title's way that no label spells (`1.5` for `+1.5` / `-1.5`) is not listed: it says nothing."""
        variants = {pair: {spelling_key(text) for text in counts} for pair, counts in spellings.items()}
        variants = {pair: keys for pair, keys in variants.items() if len(keys) > 1}
        given: dict[tuple[str, str], dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        for i in rows:
            title = None
            for tag in data.tags[i]:
                pair = (tag.name, match_key(tag.value))
                if pair not in variants:
                    continue
                title = title if title is not None else _written_form(data.texts[i].split("\n", 1)[0])
                written = [key for key in variants[pair] if f" {key} " in title]
                if len(written) == 1:
                    given[pair][written[0]][tag.value] += 1
        return {pair: {key: counts.most_common(1)[0][0] for key, counts in sorted(ways.items())}
                for pair, ways in sorted(given.items())}

    def _learn_open(self, golds: list[dict[str, set[str]]], fold: np.ndarray, views: list[_View]) -> None:
        """Attributes whose values are often new (out of fold): they get open-span candidates."""
        new: Counter[str] = Counter()
        total: Counter[str] = Counter()
        lengths: dict[str, list[int]] = defaultdict(list)
        for n, gold in enumerate(golds):
            view = views[fold[n]]
            for attribute, keys in gold.items():
                for key in keys:
                    total[attribute] += 1
                    new[attribute] += view.num("gold", attribute, key) == 0
                    lengths[attribute].append(len(key.split()))
        self.open = {a for a in total if total[a] >= 3 and new[a] / total[a] >= self.open_share}
        self.open_index: dict[tuple[str, str], list[str]] = defaultdict(list)  # what open values look like
        for (feature, attribute, value), n in sorted(views[0].total.num.items()):
            if n > 0 and attribute in self.open and feature in (*_OPEN_FEATURES, "tok") and not (
                    feature == "shape" and set(value) <= {"پ", " "}):  # plain Persian words: too common a shape
                self.open_index[(feature, value)].append(attribute)
        self.open_index = dict(self.open_index)
        self.max_len = {a: int(min(self.max_span, np.percentile(lengths[a], 95))) for a in lengths}

    # -- candidates and features -------------------------------------------------------------------

    def _known(self, view: _View, key: str) -> dict[str, float]:
        """Attributes the value key is known for (training counts of the view; taxonomy values count 0).
        The dict is the view's own: read it, do not change it."""
        known = view.known.get(key)
        if known is None:
            counts = {a: view.num("gold", a, key) for a in sorted(self.values_of.get(key, ()))}
            known = {a: n for a, n in counts.items() if n > 0}
            for a in sorted(self.extra_values.get(key, ())):
                known.setdefault(a, 0.0)
            view.known[key] = known
        return known

    def _written_as(self, attribute: str, key: str, title: Title, surface: str) -> tuple[str, bool]:
        """How a value found in a title is output: as the labels write it, and whether that follows how the title
        writes it (when the labels write it several ways, as they do in titles that write it this way: the one
        way, of those, that this title writes)."""
        ways = getattr(self, "written", {}).get((attribute, key))  # (none in an extractor saved before it)
        if ways is not None:
            found = [way for way in ways if f" {way} " in title.written]
            if len(found) == 1:
                return ways[found[0]], True
        return self.display.get((attribute, key), surface), False

    def _candidates(self, title: Title, view: _View, votes: dict[tuple[str, str], float],
                    allowed: Collection[str] | None) -> list[_Candidate]:
        ok = (lambda a: a in self.attribute_ids) if allowed is None else \
            (lambda a: a in self.attribute_ids and a in allowed)
        out: dict[tuple[str, str], _Candidate] = {}
        spans = title.spans(self.max_span)
        rate = view.rate
        open_scores: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
        for i, j in spans:
            key = title.key(i, j)
            known = self._known(view, key)
            for attribute in known:
                if ok(attribute) and (attribute, key) not in out:
                    text, as_written = self._written_as(attribute, key, title, title.surface(i, j))
                    out[(attribute, key)] = _Candidate(attribute, key, (i, j), 0, text, as_written)
            values = _span_values(title, i, j)
            looks = {a for f in _OPEN_FEATURES for a in self.open_index.get((f, values[f]), ())}
            span_tokens = title.keys[i:j]
            for t in span_tokens:
                looks.update(self.open_index.get(("tok", t), ()))
            for attribute in sorted(looks):  # sets iterate in an order that changes from run to run
                if not ok(attribute) or attribute in known or j - i > self.max_len.get(attribute, 1):
                    continue
                score = tokens_rate = 0.0
                for f in _OPEN_FEATURES:
                    score += rate(f, attribute, values[f])
                for t in span_tokens:
                    tokens_rate += rate("tok", attribute, t)
                score += tokens_rate / (j - i)
                if score >= 0.05:
                    open_scores[attribute].append((score, i, j))
        for attribute, scored in open_scores.items():
            scored.sort(key=lambda s: (-s[0], s[1], s[2]))
            for _, i, j in scored[: self.open_per_attribute]:
                key = title.key(i, j)
                out.setdefault((attribute, key), _Candidate(attribute, key, (i, j), 1, title.surface(i, j)))
        ranked = sorted(((v, a, k) for (a, k), v in votes.items() if k and ok(a) and (a, k) not in out),
                        key=lambda item: (-item[0], item[1], item[2]))
        for vote, attribute, key in ranked[:8]:
            if vote >= 0.1:
                out[(attribute, key)] = _Candidate(attribute, key, None, 2, self.display.get((attribute, key), key))
        return list(out.values())

    def _features(self, title: Title, cands: list[_Candidate], view: _View,
                  votes: dict[tuple[str, str], float]) -> np.ndarray:
        n_tok = max(len(title.keys), 1)
        products = max(view.den("products", ""), 1.0)
        known_spans = [c.span for c in cands if c.source == 0 and c.span]
        rows = []
        for c in cands:
            a, key = c.attribute, c.key
            known = self._known(view, key)
            gold_a = view.num("gold", a, key)
            gold_any = view.num("gold", ANY, key)
            row = [
                self.attribute_ids[a], c.source, len(known), math.log1p(gold_a), gold_a / (gold_any + 1.0),
                view.rate("span", a, key), math.log1p(view.den("span", key)),
                view.num("has", a, "") / products, view.rate("head", a, title.head),
                view.rate("kind", a, title.kind) if title.kind else np.nan,
                view.num("kindval", a, key + "\x00" + title.kind) / (view.den("kind", title.kind) + 1.0)
                if title.kind else np.nan,
                votes.get((a, key), 0.0), votes.get((a, ""), 0.0),
                votes.get(("\x00img", a + "\x00" + key), np.nan if self.images is None else 0.0),
                votes.get(("\x00img", a + "\x00"), np.nan if self.images is None else 0.0),
                float(self.multi.get(a, False)),
                float(key in self.extra_values),
                votes.get(("\x00empty", ""), np.nan), votes.get(("\x00size", ""), np.nan), len(title.keys),
                float(len(known_spans)),
            ]
            if c.span is None:
                row += [np.nan] * 28
            else:
                i, j = c.span
                values = _span_values(title, i, j)
                tok = [view.rate("tok", a, t) for t in title.keys[i:j]]
                tok_any = [view.rate("tok", ANY, t) for t in title.keys[i:j]]
                text = c.text if c.source else title.surface(i, j)
                latin = all(k.isascii() for k in title.keys[i:j])
                row += [
                    i / n_tok, i, n_tok - j, j - i, len(key),
                    float(latin), float(any(ch.isdigit() for ch in key)),
                    float(key.replace(" ", "").replace(".", "").isdigit()),
                    float(latin and text.isupper()), float(i in title.breaks), float(j in title.breaks or j == n_tok),
                    view.rate("prev", a, values["prev"]), view.rate("next", a, values["next"]),
                    view.rate("first", a, values["first"]), view.rate("last", a, values["last"]),
                    view.rate("shape", a, values["shape"]), view.rate("suffix", a, values["suffix"]),
                    sum(tok) / len(tok), min(tok), max(tok), sum(tok_any) / len(tok_any), min(tok_any),
                    float(any(s != c.span and s[0] <= i and j <= s[1] for s in known_spans)),
                    float(any(s != c.span and i <= s[0] and s[1] <= j for s in known_spans)),
                    float(key == title.head), float(len(find_spans(title, key))),
                    math.log1p(view.den("tok", title.keys[i])), _transliterated(title, i, j),
                ]
            rows.append(row)
        return np.array(rows, dtype=np.float32)

    def _tfidf(self, titles: Sequence[Title]) -> Any:
        """TF-IDF rows (unit length) of the titles' tokens and token pairs."""
        return self.vectorizer.transform([_title_terms(t) for t in titles])

    def _votes(self, x: Any, images: np.ndarray | None, has_image: np.ndarray | None,
               fold: np.ndarray | None = None) -> list[dict[tuple[str, str], float]]:
        """Per product: the similarity-weighted share of its K nearest training titles with each (attribute,
        value key), and with each attribute (`(attribute, "")`); with images, the same from the nearest
        images, under `("\x00img", attribute + "\x00" + key)`. With `fold` (training products: their folds)
        a product only sees training products of other folds."""
        out: list[dict[tuple[str, str], float]] = [{} for _ in range(x.shape[0])]
        for start in range(0, x.shape[0], 512):
            sims = (x[start : start + 512] @ self.x_train.T).toarray()
            self._add_votes(out, start, sims, fold, "")
        if images is not None and has_image is not None and self.images is not None:
            with one_blas_thread():  # the same neighbours whatever the cores
                for start in range(0, len(images), 512):
                    sims = images[start : start + 512] @ self.images.T
                    sims[:, ~self.has_image_train] = -1
                    sims[~has_image[start : start + 512]] = -1
                    self._add_votes(out, start, sims, fold, "\x00img")
        return out

    def _add_votes(self, out: list[dict[tuple[str, str], float]], start: int, sims: np.ndarray,
                   fold: np.ndarray | None, kind: str) -> None:
        if fold is not None:
            sims[fold[start : start + len(sims)][:, None] == self.fold[None, :]] = -1
        k = min(self.neighbours, sims.shape[1])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r in range(len(sims)):
            weights = np.maximum(sims[r, idx[r]], 0)
            total = float(weights.sum())
            if total <= 0:
                continue
            votes = out[start + r]
            for w, n in zip(weights / total, idx[r], strict=True):
                if w <= 0:
                    continue
                if not kind:  # how many values the neighbours have: labels are sparse for some kinds of titles
                    size = sum(len(keys) for keys in self.golds[n].values())
                    votes[("\x00empty", "")] = votes.get(("\x00empty", ""), 0.0) + float(w) * (size == 0)
                    votes[("\x00size", "")] = votes.get(("\x00size", ""), 0.0) + float(w) * size
                for attribute, keys in self.golds[n].items():
                    for name, key in ((attribute, ""), *((attribute, key) for key in keys)):
                        slot = (kind, name + "\x00" + key) if kind else (name, key)
                        votes[slot] = votes.get(slot, 0.0) + float(w)

    # -- decoding ------------------------------------------------------------------------------------

    def _decode(self, cands: list[_Candidate], scores: np.ndarray, thresholds: dict[str, float],
                default: float) -> tuple[list[int], list[int]]:
        """Kept candidates (indices, best first) and the best of the rest."""
        kept: list[int] = []
        rest: list[int] = []
        taken_spans: list[tuple[int, int]] = []
        values: dict[str, int] = Counter()
        for n in np.argsort(-scores, kind="stable"):
            c = cands[n]
            blocked = (not self.multi.get(c.attribute, False) and values[c.attribute] >= 1) or (
                c.span is not None and any(c.span[0] < s[1] and s[0] < c.span[1] and s != c.span
                                           for s in taken_spans))
            if scores[n] >= thresholds.get(c.attribute, default) and not blocked:
                kept.append(int(n))
                values[c.attribute] += 1
                if c.span is not None:
                    taken_spans.append(c.span)
            elif len(rest) < 5 and scores[n] >= 0.05:
                rest.append(int(n))
        return kept, rest

    def _tune(self, candidates: list[list[_Candidate]], scores: list[np.ndarray], golds: list[dict[str, set[str]]],
              n_gold: int) -> tuple[dict[str, float], float]:
        """A global threshold, then one per attribute with enough support (coordinate ascent), maximising
        micro-F1 over out-of-fold scores. The decisions are taken once at a low bar; raising a threshold
        only drops some of them."""
        grid = [round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025)]
        items: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        for cands, oof, gold in zip(candidates, scores, golds, strict=True):
            kept, _ = self._decode(cands, oof, {}, grid[0])
            for k in kept:
                c = cands[k]
                items[c.attribute].append((float(oof[k]), c.key in gold.get(c.attribute, ())))
        arrays = {a: (np.array([s for s, _ in v]), np.array([h for _, h in v])) for a, v in items.items()}

        def counts(a: str, t: float) -> tuple[int, int]:
            s, h = arrays[a]
            sel = s >= t
            return int(h[sel].sum()), int((~h[sel]).sum())

        def f1(tp: int, fp: int) -> float:
            return 2 * tp / (tp + fp + n_gold) if tp + fp + n_gold else 0.0

        def total(thresholds: dict[str, float]) -> tuple[int, int]:
            tp = fp = 0
            for a, t in thresholds.items():
                x, y = counts(a, t)
                tp, fp = tp + x, fp + y
            return tp, fp

        best = max(grid, key=lambda t: (f1(*total(dict.fromkeys(arrays, t))), -t))
        thresholds = dict.fromkeys(arrays, best)
        for _ in range(2):
            for a in sorted(arrays):
                if arrays[a][1].sum() < 20:
                    continue
                rest_tp, rest_fp = total({b: t for b, t in thresholds.items() if b != a})

                def gain(t: float, a: str = a, rest_tp: int = rest_tp, rest_fp: int = rest_fp) -> tuple[float, float]:
                    x, y = counts(a, t)
                    return f1(rest_tp + x, rest_fp + y), -abs(t - best)

                thresholds[a] = max(grid, key=gain)
        return {a: t for a, t in thresholds.items() if t != best}, best

    # -- prediction ----------------------------------------------------------------------------------

    def predict(self, data: Dataset, attributes: Sequence[Collection[str] | None] | None = None
                ) -> list[Extraction]:
        """One Extraction per product of `data`, in order. `attributes[i]`, when given, limits product i to
        those attributes (None = all). Tags are canonical for the taxonomy the extractor was fitted with."""
        titles = [_parse(text, category) for text, category in zip(data.texts, data.categories, strict=True)]
        view = _View(self.counts)
        x = self._tfidf(titles)
        images = _unit(data.embeddings) if self.images is not None else None
        votes = self._votes(x, images, data.has_image if images is not None else None)
        candidates, features = [], []
        for n, title in enumerate(titles):
            allowed = None if attributes is None else attributes[n]
            cands = self._candidates(title, view, votes[n], allowed) if title.keys or votes[n] else []
            candidates.append(cands)
            if cands:
                features.append(self._features(title, cands, view, votes[n]))
        scores = np.zeros(0)
        if features:  # every candidate in one call, on every core
            scores = self.booster.predict(np.vstack(features), raw_score=False, num_threads=usable_cpus())
        out, start = [], 0
        for cands in candidates:
            out.append(self._extraction(cands, scores[start : start + len(cands)]))
            start += len(cands)
        return out

    def _extraction(self, cands: list[_Candidate], scores: np.ndarray) -> Extraction:
        """One product's candidates, scored, decided by the tuned thresholds."""
        kept, rest = self._decode(cands, scores, self.thresholds, self.threshold)
        return Extraction([(self._tag(cands[k]), float(scores[k])) for k in kept],
                          [(self._tag(cands[k]), float(scores[k])) for k in rest],
                          {self._tag(cands[k]) for k in kept if cands[k].as_written})


    def candidates(self, title: str, attributes: Collection[str] | None = None) -> list[tuple[Tag, str, str]]:
        """What the extractor considers for one title, before scoring: (tag, source, the span as written),
        source being `dictionary`, `open` or `neighbours` (no span)."""
        parsed = parse_title(title)
        votes = self._votes(self._tfidf([parsed]), None, None)[0]
        return [(self._tag(c), SOURCES[c.source], parsed.surface(*c.span) if c.span else "")
                for c in self._candidates(parsed, _View(self.counts), votes, attributes)]

    @property
    def single_valued(self) -> set[str]:
        """The attributes that take at most one value."""
        return {a for a, multi in self.multi.items() if not multi}

    def _tag(self, candidate: _Candidate) -> Tag:
        tag = Tag(candidate.attribute, candidate.text)
        return self.taxonomy.canonical(tag) if self.taxonomy is not None else tag

    # -- saving ----------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write the fitted extractor to `folder/extractor.pickle.gz` (a gzipped pickle: joblib's unpickler,
        written in Python, took 0.9 s to read the many small objects that plain pickle reads in 0.1 s)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = dict(self.__dict__)
        state.pop("_held_out", None)
        state["booster"] = self.booster.model_to_string()
        with gzip.open(folder / SAVED_FILE, "wb", compresslevel=3) as file:
            pickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, folder: str | Path) -> AttributeExtractor:
        folder = Path(folder)
        if (folder / SAVED_FILE).exists():
            with gzip.open(folder / SAVED_FILE, "rb") as file:
                state = pickle.load(file)
        else:  # saved by an earlier tagkit
            import joblib

            state = joblib.load(folder / "extractor.joblib")
        extractor = cls.__new__(cls)
        extractor.__dict__.update(state)
        extractor.booster = load_booster(text=state["booster"])
        if not isinstance(extractor.vectorizer, Tfidf):
            # saved before `Tfidf`: a scikit-learn vectoriser cutting titles with `_title_terms`
            extractor.vectorizer = Tfidf.from_vectoriser(extractor.vectorizer, "given_terms")
        return extractor


def merge_tags(*sources: Iterable[tuple[Tag, float]], taxonomy: Taxonomy | None = None,
               single_valued: Collection[str] = ()) -> list[tuple[Tag, float]]:
    """Tags from several models (the catalogue model's, the extractor's) as one list, best first: each tag once
    with its best score, one value per single-valued attribute (`single_valued`). With a taxonomy,
    `Taxonomy.constrain` decides for the attributes it knows (canonical tags it allows, its arity); tags of
    attributes it does not know pass through unchanged."""
    from tagkit.taxonomy import best_first

    scored = [item for source in sources for item in source]
    if taxonomy is not None:
        return taxonomy.constrain(scored, keep_unknown=True, single_valued=single_valued)
    best: dict[Tag, float] = {}
    for tag, score in scored:
        best[tag] = max(score, best.get(tag, float("-inf")))
    return best_first(best, set(single_valued))


_ROMAN = str.maketrans({"ب": "b", "پ": "p", "ت": "t", "ث": "s", "ج": "j", "چ": "c", "ح": "h", "خ": "k", "د": "d",
                        "ذ": "z", "ر": "r", "ز": "z", "ژ": "j", "س": "s", "ش": "s", "ص": "s", "ض": "z", "ط": "t",
                        "ظ": "z", "ع": "", "غ": "g", "ف": "f", "ق": "g", "ک": "k", "گ": "g", "ل": "l", "م": "m",
                        "ن": "n", "و": "", "ه": "", "ی": "", "ا": "", " ": ""})
_LATIN_SKELETON = str.maketrans({"c": "k", "q": "k", "x": "k", "w": "", "y": "", "h": "", "a": "", "e": "", "i": "",
                                 "o": "", "u": "", " ": "", "v": ""})


def _transliterated(title: Title, i: int, j: int) -> float:
    """How well a Persian span and the Latin words right before or after it spell the same name (brands are
    often written both ways: `ملورینا Melorina`): 0..1, by their consonant skeletons."""
    span = title.keys[i:j]
    persian = not any(k.isascii() for k in span)
    skeleton = "".join(span).translate(_ROMAN) if persian else "".join(span).translate(_LATIN_SKELETON)
    best = 0.0
    for a, b in ((j, j + len(span) + 1), (max(0, i - len(span) - 1), i)):
        other = [k for k in title.keys[a:b] if k.isascii() == persian]
        if not other or not skeleton:
            continue
        for n in range(1, len(other) + 1):
            words = other[:n] if a == j else other[-n:]
            theirs = "".join(words).translate(_LATIN_SKELETON if persian else _ROMAN)
            if theirs:
                best = max(best, _similarity(skeleton, theirs))
    return best


@functools.lru_cache(maxsize=1 << 16)
def _similarity(a: str, b: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio()


def _parse(text: str, category: Sequence[str]) -> Title:
    """A Dataset product's title (the first line of its text) with its category."""
    title = parse_title(text.split("\n", 1)[0])
    return replace(title, kind=match_key(category[-1])) if category else title


def _title_terms(title: Title) -> list[str]:
    """TF-IDF terms of a title: its tokens and token pairs."""
    keys = title.keys
    return [*keys, *(f"{a} {b}" for a, b in pairwise(keys))]


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
