"""The LightGBM candidate re-ranker: one binary model over (product, candidate class) pairs.

The base models (text SVM, image ridge, image neighbours, colour ridge) each give a score per class, missing (NaN) when
their input is absent. For each product the top candidates by rank fusion get a feature row: each base
model's score, rank and margin for that candidate, the same for the candidate's parents in the hierarchy,
the class prior, which inputs the product has, and how many base models put it first. LightGBM scores the
pairs; for a single-label task the scores are turned into probabilities over the candidates with a
softmax whose temperature is fitted on validation rows (one per input condition).

Training rows are shown three times where they can be: with both inputs, with the image only and with
the title only (modality dropout), so the model knows what to do when one input is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TEXT_BLOCKS = frozenset({"text", "nb"})
CONDITIONS = ("both", "image", "text")
BLOCK_ORDER = ("text", "nb", "ridge", "knn", "colour")


@dataclass
class Hierarchy:
    """For each level above the leaves: the parent id of every class (`parents[l][c]`) and how many."""

    parents: list[np.ndarray] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


def condition_of(has_text: np.ndarray, has_image: np.ndarray) -> np.ndarray:
    """0 = both inputs, 1 = image only, 2 = text only, 3 = neither."""
    return np.where(has_text & has_image, 0, np.where(has_image, 1, np.where(has_text, 2, 3)))


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :], axis=1)
    return ranks


def _group(scores: np.ndarray, parent: np.ndarray, n_parents: int, how: str) -> np.ndarray:
    out = np.full((len(scores), n_parents), -np.inf if how == "max" else 0.0, dtype=np.float32)
    for p in range(n_parents):
        cols = np.flatnonzero(parent == p)
        if len(cols):
            part = scores[:, cols]
            out[:, p] = part.max(1) if how == "max" else part.sum(1)
    return out


def _margin(scores: np.ndarray) -> np.ndarray:
    """score minus the best other class's score (positive only for the top class)."""
    if scores.shape[1] < 2:
        return np.zeros_like(scores)
    top2 = -np.partition(-scores, 1, axis=1)[:, :2]
    best = np.where(scores >= top2[:, :1], top2[:, 1:2], top2[:, :1])
    return scores - best


def candidate_features(blocks: dict[str, np.ndarray], log_prior: np.ndarray, hierarchy: Hierarchy | None,
                       has_text: np.ndarray, has_image: np.ndarray, n_candidates: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (n × M class ids, best fused first) and their features (n × M × F)."""
    blocks = {name: blocks[name] for name in sorted(blocks, key=BLOCK_ORDER.index)}
    n, k = len(has_text), len(log_prior)
    m = min(n_candidates, k)
    rows = np.arange(n)[:, None]
    available = {name: (has_text if name in TEXT_BLOCKS else has_image) for name in blocks}
    fused = np.tile(1e-3 * (log_prior - log_prior.max()) / max(1.0, -log_prior.min() + log_prior.max()), (n, 1))
    ranks = {}
    for name, scores in blocks.items():
        r = _ranks(np.nan_to_num(scores, nan=0.0))
        ranks[name] = r
        fused += np.where(available[name][:, None], 1.0 / (r + 2.0), 0.0)
    cand = np.argpartition(-fused, m - 1, axis=1)[:, :m] if m < k else np.tile(np.arange(k), (n, 1))
    order = np.lexsort((cand, -fused[rows, cand]), axis=1)
    cand = np.take_along_axis(cand, order, 1)
    feats = []
    agree = np.zeros((n, m), dtype=np.float32)
    for name, scores in blocks.items():
        missing = ~available[name][:, None]
        s = scores[rows, cand]
        r = ranks[name][rows, cand].astype(np.float32)
        g = _margin(np.nan_to_num(scores, nan=0.0))[rows, cand]
        agree += np.where(missing, 0.0, r == 0)
        feats += [np.where(missing, np.nan, x) for x in (s, r, g)]
        if hierarchy is not None:
            how = "sum" if name == "knn" else "max"
            for parent, size in zip(hierarchy.parents, hierarchy.sizes, strict=True):
                ps = _group(np.nan_to_num(scores, nan=0.0), parent, size, how)
                pr = _ranks(ps).astype(np.float32)
                pc = parent[cand]
                feats += [np.where(missing, np.nan, ps[rows, pc]), np.where(missing, np.nan, pr[rows, pc])]
    feats.append(np.broadcast_to(log_prior[cand], (n, m)))
    if hierarchy is not None:
        prior = np.exp(log_prior)
        for parent, size in zip(hierarchy.parents, hierarchy.sizes, strict=True):
            parent_prior = np.log(np.maximum(np.bincount(parent, weights=prior, minlength=size), 1e-12))
            feats.append(parent_prior[parent[cand]])
    feats.append(agree)
    feats.append(np.broadcast_to(np.arange(m, dtype=np.float32), (n, m)))
    feats.append(np.broadcast_to(has_text[:, None], (n, m)).astype(np.float32))
    feats.append(np.broadcast_to(has_image[:, None], (n, m)).astype(np.float32))
    return cand, np.stack(feats, axis=2).astype(np.float32)


def _drop(blocks: dict[str, np.ndarray], rows: np.ndarray, text: bool) -> dict[str, np.ndarray]:
    """The blocks for `rows` with one input removed (text=True: the title's, else the image's)."""
    out = {}
    for name, scores in blocks.items():
        part = scores[rows].copy()
        if (name in TEXT_BLOCKS) == text:
            part[:] = np.nan
        out[name] = part
    return out


class Reranker:
    """LightGBM over candidate pairs. `kind` "single": one true class per row (probabilities over the
    candidates sum to 1); "multi": any number of true classes (independent probabilities)."""

    def __init__(self, kind: str = "single", n_candidates: int = 10, rounds: int = 300, learning_rate: float = 0.1,
                 num_leaves: int = 31, min_data_in_leaf: int = 100, seed: int = 0, n_jobs: int = 2,
                 augment: tuple[float, float] = (0.6, 0.3)) -> None:
        self.kind = kind
        self.n_candidates = n_candidates
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.seed = seed
        self.n_jobs = n_jobs
        self.augment = augment
        self.booster: Any = None  # a lightgbm.Booster after `fit`; a loaded model's may be a SavedBooster
        self.log_prior: np.ndarray | None = None
        self.hierarchy: Hierarchy | None = None
        self.temperatures = [1.0, 1.0, 1.0]
        self.outside: list[float | None] = [None, None, None]  # logit of "none of the candidates"; None: no mass
        self.best_rounds = 0
        self.candidate_recall: dict[str, float] = {}

    # -- training data -------------------------------------------------------------------------

    def _expand(self, blocks, rows, has_text, has_image, rng, augment):
        """Rows under their own inputs plus, for rows with both, image-only and title-only copies."""
        parts = [(blocks_sub(blocks, rows), rows, has_text[rows], has_image[rows])]
        both = rows[has_text[rows] & has_image[rows]]
        for fraction, drop_text in zip(augment, (True, False), strict=True):
            if fraction <= 0 or not len(both):
                continue
            pick = both if fraction >= 1 else np.sort(rng.choice(both, int(len(both) * fraction), replace=False))
            ht = np.zeros(len(pick), bool) if drop_text else has_text[pick]
            hi = has_image[pick] if drop_text else np.zeros(len(pick), bool)
            parts.append((_drop(blocks, pick, drop_text), pick, ht, hi))
        return parts

    def _pairs(self, parts, truth):
        xs, ys, conds, groups = [], [], [], []
        for sub, rows, ht, hi in parts:
            cand, feats = candidate_features(sub, self.log_prior, self.hierarchy, ht, hi, self.n_candidates)
            if self.kind == "single":
                label = (cand == truth[rows][:, None]).astype(np.float32)
            else:
                label = np.take_along_axis(truth[rows], cand, 1).astype(np.float32)
            xs.append(feats.reshape(-1, feats.shape[2]))
            ys.append(label)
            conds.append(condition_of(ht, hi))
            groups.append(cand)
        return xs, ys, conds, groups

    def fit(self, blocks: dict[str, np.ndarray], truth: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray,
            has_text: np.ndarray, has_image: np.ndarray, log_prior: np.ndarray,
            hierarchy: Hierarchy | None = None) -> Reranker:
        """`truth`: class id per row for "single" (rows with -1 are not used), a 0/1 matrix for "multi"."""
        self.log_prior = log_prior.astype(np.float32)
        self.hierarchy = hierarchy
        rng = np.random.default_rng(self.seed)
        if self.kind == "single":
            train_rows = train_rows[truth[train_rows] >= 0]
            val_rows = val_rows[truth[val_rows] >= 0]
        tx, ty, _, _ = self._pairs(self._expand(blocks, train_rows, has_text, has_image, rng, self.augment), truth)
        vparts = self._expand(blocks, val_rows, has_text, has_image, rng, (1.0, 1.0))
        vx, vy, vconds, _vcands = self._pairs(vparts, truth)
        params = {
            "objective": "binary", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf, "lambda_l2": 1.0, "feature_fraction": 0.8,
            "bagging_fraction": 1.0, "max_bin": 63, "num_threads": self.n_jobs, "seed": self.seed,
            "deterministic": True, "force_row_wise": True, "verbosity": -1,
        }
        import lightgbm as lgb  # training only: predicting needs no import of it (tagkit.models.booster)

        train_set = lgb.Dataset(np.concatenate(xs_or_empty(tx)), np.concatenate(ty).ravel(), free_raw_data=True)
        callbacks = []
        valid_sets = []
        if sum(len(v) for v in vx):
            valid = lgb.Dataset(np.concatenate(vx), np.concatenate(vy).ravel(), reference=train_set)
            valid_sets = [valid]
            callbacks.append(lgb.early_stopping(20, verbose=False))
        self.booster = lgb.train(params, train_set, num_boost_round=self.rounds, valid_sets=valid_sets,
                                 callbacks=callbacks)
        self.best_rounds = int(self.booster.best_iteration or self.rounds)
        # calibration on the validation rows, per input condition
        for x, y, cond in zip(vx, vy, vconds, strict=True):
            if not len(y):
                continue
            z = self.booster.predict(x, num_iteration=self.best_rounds, raw_score=True).reshape(y.shape)
            for c in range(3):
                sel = cond == c
                name = CONDITIONS[c]
                if (y[sel].sum(1) > 0).sum() >= 20 and self.kind == "single":
                    self.temperatures[c], self.outside[c] = _fit_calibration(z[sel], y[sel])
                if len(y[cond == c]):
                    self.candidate_recall[name] = float((y[cond == c].sum(1) > 0).mean())
        return self

    # -- prediction ----------------------------------------------------------------------------

    def predict(self, blocks: dict[str, np.ndarray], has_text: np.ndarray, has_image: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates (n × M class ids) and their probabilities (n × M), best first."""
        assert self.booster is not None and self.log_prior is not None, "fit first"
        cand, feats = candidate_features(blocks, self.log_prior, self.hierarchy, has_text, has_image,
                                         self.n_candidates)
        n, m = cand.shape
        if n == 0:
            return cand, np.zeros((0, m), dtype=np.float32)
        z = self.booster.predict(feats.reshape(n * m, -1), num_iteration=self.best_rounds,
                                 raw_score=True).reshape(n, m)
        cond = condition_of(has_text, has_image)
        if self.kind == "single":
            temps = np.array([*self.temperatures, 1.0])[cond][:, None]
            outside = getattr(self, "outside", [None] * 3)  # (none in a model saved before it)
            p = _softmax(z / temps, np.array([-np.inf if b is None else b for b in [*outside, None]])[cond][:, None])
        else:
            p = 1.0 / (1.0 + np.exp(-z))
        none = cond == 3
        if none.any():  # nothing to go on: the class prior
            prior = np.exp(self.log_prior)[cand[none]]
            p[none] = prior / prior.sum(1, keepdims=True) if self.kind == "single" else prior
        order = np.lexsort((cand, -p), axis=1)
        return np.take_along_axis(cand, order, 1), np.take_along_axis(p, order, 1).astype(np.float32)


def blocks_sub(blocks: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: scores[rows] for name, scores in blocks.items()}


def xs_or_empty(xs: list[np.ndarray]) -> list[np.ndarray]:
    return xs if xs else [np.zeros((0, 1), dtype=np.float32)]


def _softmax(z: np.ndarray, outside: np.ndarray | None = None) -> np.ndarray:
    """Softmax over each row; with `outside` (a logit per row, -inf for none), the share it takes is left out: the
    probabilities then sum to less than 1, the rest being "none of these"."""
    top = z.max(1, keepdims=True) if outside is None else np.maximum(z.max(1, keepdims=True), outside)
    e = np.exp(z - top)
    rest = 0.0 if outside is None else np.exp(outside - top)
    return e / (e.sum(1, keepdims=True) + rest)


def _fit_calibration(z: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    """The softmax temperature, and the logit of "none of the candidates", minimising the negative log-likelihood
    of the truth over validation rows; a row of `y` all 0 is a product whose true class is not among its
    candidates. Without such rows there is no outside logit (None). For each temperature the outside logit is the
    one whose mean outside probability is the share of those rows (where the likelihood is highest)."""
    inside = y.sum(1) > 0
    missed = 1.0 - float(inside.mean())
    best: tuple[float, float, float | None] = (np.inf, 1.0, None)
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 41)):
        s = z / t
        top = s.max(1)
        lse = top + np.log(np.exp(s - top[:, None]).sum(1))  # log of each row's sum of exp
        true_logit = (s * y).sum(1)
        if missed == 0.0:
            b, log_total = None, lse
            nll = float((lse - true_logit).mean())
        else:
            lo, hi = float(lse.min()) - 50.0, float(lse.max()) + 50.0
            for _ in range(60):  # the mean outside probability grows with b: bisection
                b = (lo + hi) / 2
                if (1.0 / (1.0 + np.exp(lse - b))).mean() < missed:
                    lo = b
                else:
                    hi = b
            log_total = np.logaddexp(lse, b)
            nll = float(np.where(inside, log_total - true_logit, log_total - b).mean())
        if nll < best[0]:
            best = (nll, float(t), b)
    return best[1], best[2]
