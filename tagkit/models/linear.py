"""Fast linear base models: a linear SVM on title TF-IDF, closed-form ridge on image embeddings and colours.

Both give one score per class (or per tag) and are cheap enough to fit once per cross-validation fold,
so the re-ranker can learn from out-of-fold scores.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

ABSENT_SCORE = -3.0
"""Score of a class a text model never saw in its training rows (below any SVM margin it would give)."""


class TextLinear:
    """One-vs-rest linear SVM on TF-IDF rows: multi-class (`y` = class index, -1 = unknown) or
    multi-label (`Y` = 0/1 matrix, one binary SVM per column with at least `min_positive` positives)."""

    def __init__(self, C: float = 0.5, seed: int = 0, min_positive: int = 2) -> None:
        self.C = C
        self.seed = seed
        self.min_positive = min_positive
        self.coef: np.ndarray | None = None  # (n_features, n_classes) float32
        self.intercept: np.ndarray | None = None

    def _fit_quietly(self, x: sp.csr_matrix, y: np.ndarray) -> Any:
        """A fitted LinearSVC (scikit-learn is imported for fitting only: the model predicts with its arrays)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # many classes on few products (628 product types on a small catalogue) are what a catalogue is: with
            # -q a cron job's stderr must stay empty
            warnings.filterwarnings("ignore", "The number of unique classes is greater than 50%", UserWarning)
            return LinearSVC(C=self.C, tol=1e-3, max_iter=300, random_state=self.seed).fit(x, y)

    def fit_multiclass(self, x: sp.csr_matrix, y: np.ndarray, n_classes: int) -> TextLinear:
        coef = np.zeros((x.shape[1], n_classes), dtype=np.float32)
        intercept = np.full(n_classes, ABSENT_SCORE, dtype=np.float32)
        rows = np.flatnonzero(y >= 0)
        present = np.unique(y[rows])
        if len(present) == 1:
            intercept[present[0]] = 1.0
        elif len(present) > 1:
            svm = self._fit_quietly(x[rows], y[rows])
            if len(present) == 2:  # liblinear keeps one weight vector for two classes
                w = svm.coef_[0].astype(np.float32)
                coef[:, present[1]], coef[:, present[0]] = w, -w
                intercept[present[1]], intercept[present[0]] = svm.intercept_[0], -svm.intercept_[0]
            else:
                coef[:, present] = svm.coef_.T
                intercept[present] = svm.intercept_
        self.coef, self.intercept = coef, intercept
        return self

    def fit_multilabel(self, x: sp.csr_matrix, y: np.ndarray, rows: np.ndarray) -> TextLinear:
        n_labels = y.shape[1]
        coef = np.zeros((x.shape[1], n_labels), dtype=np.float32)
        intercept = np.full(n_labels, ABSENT_SCORE, dtype=np.float32)
        xr, yr = x[rows], y[rows]
        for j in range(n_labels):
            positives = int(yr[:, j].sum())
            if positives < self.min_positive or positives == len(rows):
                continue
            svm = self._fit_quietly(xr, yr[:, j])
            coef[:, j] = svm.coef_[0]
            intercept[j] = svm.intercept_[0]
        self.coef, self.intercept = coef, intercept
        return self

    def decision(self, x: sp.csr_matrix) -> np.ndarray:
        assert self.coef is not None and self.intercept is not None, "fit first"
        return np.asarray(x @ self.coef, dtype=np.float32) + self.intercept


class TextNB:
    """Complement naive Bayes on TF-IDF rows (multi-class): a very cheap second opinion on titles."""

    def __init__(self, alpha: float = 0.3) -> None:
        self.alpha = alpha
        self.weights: np.ndarray | None = None  # (n_features, n_classes)

    def fit_multiclass(self, x: sp.csr_matrix, y: np.ndarray, n_classes: int) -> TextNB:
        rows = np.flatnonzero(y >= 0)
        onehot = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (y[rows], rows)),
                               shape=(n_classes, x.shape[0]))
        counts = np.asarray((onehot @ x).todense(), dtype=np.float64)  # (n_classes, n_features)
        complement = counts.sum(0, keepdims=True) - counts + self.alpha
        logged = np.log(complement / complement.sum(1, keepdims=True))
        w = logged / logged.sum(1, keepdims=True)  # weight normalisation (Rennie et al.)
        present = np.bincount(y[rows], minlength=n_classes) > 0
        w[~present] = 0.0
        self.weights = (-w).T.astype(np.float32)
        self.absent = ~present
        self.floor = None
        scores = self.decision(x[rows]) if len(rows) else np.zeros((0, n_classes), np.float32)
        self.floor = float(scores[:, present].min()) - 1.0 if scores.size and present.any() else 0.0
        return self

    def decision(self, x: sp.csr_matrix) -> np.ndarray:
        """Class scores; a class without a training title scores `floor`, below every score of the training titles
        (the same whatever other titles are scored with it)."""
        assert self.weights is not None, "fit first"
        out = np.asarray(x @ self.weights, dtype=np.float32)
        floor = getattr(self, "floor", None)
        if floor is None:  # a model saved before `floor`: below the lowest score of these titles
            floor = out.min() - 1.0 if out.size else 0.0
        out[:, self.absent] = floor
        return out


class ImageRidge:
    """Multi-output ridge regression of 0/1 targets on image embeddings, solved in closed form.

    With `landmarks` > 0 the features are RBF kernel values against that many training images picked at
    random (a kernel ridge on a subset of regressors), else the embeddings themselves. Every task's targets
    are solved together (one Gram matrix), and out-of-fold solutions come from the per-fold Gram matrices,
    so cross-validation costs little more than one fit. Features are made in blocks, so memory stays at
    about one n × landmarks float32 matrix.
    """

    BLOCK = 4096

    def __init__(self, landmarks: int = 0, gamma: float = 1.0, alpha: float = 0.1, seed: int = 0) -> None:
        self.landmarks = landmarks
        self.gamma = gamma
        self.alpha = alpha
        self.seed = seed
        self.centres: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.weights: np.ndarray | None = None
        self.bias: np.ndarray | None = None

    def features(self, e: np.ndarray) -> np.ndarray:
        if self.centres is None:
            return e.astype(np.float32)
        out = np.empty((len(e), len(self.centres)), dtype=np.float32)
        for start in range(0, len(e), self.BLOCK):
            sq = np.maximum(2.0 - 2.0 * (e[start:start + self.BLOCK] @ self.centres.T), 0.0)  # unit-length rows
            out[start:start + self.BLOCK] = np.exp(-self.gamma * sq)
        return out

    def fit_oof(self, e: np.ndarray, y: np.ndarray, folds: np.ndarray, n_folds: int) -> np.ndarray:
        """Fit on all rows of `e` (targets `y`, n × k) and return out-of-fold scores for those rows.

        Features are made block by block and never held for all rows: each fold's sums (Gram matrix,
        feature sums, feature × target sums) are accumulated, centred on the overall mean afterwards;
        the full fit uses all folds' sums, each out-of-fold fit the other folds' sums."""
        self.centres = None
        if self.landmarks and len(e) > self.landmarks:
            rng = np.random.default_rng(self.seed)
            self.centres = e[np.sort(rng.choice(len(e), self.landmarks, replace=False))].astype(np.float32)
        parts = [self._sums(e, y, np.flatnonzero(folds == k)) for k in range(n_folds)]
        self.mean = (sum(p[1] for p in parts) / len(e)).astype(np.float32)
        self.bias = y.mean(0).astype(np.float32)
        self.weights = self._solve(parts).astype(np.float32)
        oof = np.zeros(y.shape, dtype=np.float32)
        for k in range(n_folds):
            rows = np.flatnonzero(folds == k)
            if len(rows):
                w = self._solve(parts[:k] + parts[k + 1:]).astype(np.float32)
                for start in range(0, len(rows), self.BLOCK):
                    block = rows[start:start + self.BLOCK]
                    oof[block] = (self.features(e[block]) - self.mean) @ w + self.bias
        return oof

    def _sums(self, e: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Gram matrix (float32), feature sums, feature × target sums, target sums and count of `rows`."""
        width = len(self.centres) if self.centres is not None else e.shape[1]
        gram = np.zeros((width, width), dtype=np.float32)
        total = np.zeros(width, dtype=np.float64)
        cross = np.zeros((width, y.shape[1]), dtype=np.float64)
        for start in range(0, len(rows), self.BLOCK):
            block = rows[start:start + self.BLOCK]
            f = self.features(e[block])
            gram += f.T @ f
            total += f.sum(0)
            cross += f.T @ y[block]
        return gram, total, cross, y[rows].sum(0).astype(np.float64), len(rows)

    def _solve(self, parts: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """Ridge weights from the sums of `parts`, features centred on the overall mean."""
        assert self.mean is not None
        mu = self.mean.astype(np.float64)
        gram = parts[0][0].astype(np.float64)
        for part in parts[1:]:
            gram += part[0]
        total = np.sum([p[1] for p in parts], axis=0)
        n = sum(p[4] for p in parts)
        gram -= np.outer(total, mu) + np.outer(mu, total) - n * np.outer(mu, mu)
        cross = np.sum([p[2] for p in parts], axis=0) - np.outer(mu, np.sum([p[3] for p in parts], axis=0))
        gram[np.diag_indices_from(gram)] += self.alpha
        return np.linalg.solve(gram, cross)

    def decision(self, e: np.ndarray) -> np.ndarray:
        assert self.weights is not None and self.mean is not None and self.bias is not None, "fit first"
        return (self.features(e) - self.mean) @ self.weights + self.bias


class ColourRidge:
    """`ImageRidge` on colour features (`tagkit.colour`): each feature standardised on the training images, each
    vector scaled to unit length, RBF kernel features against `landmarks` training images."""

    def __init__(self, landmarks: int = 2000, gamma: float = 1.0, alpha: float = 0.01, seed: int = 0) -> None:
        self.ridge = ImageRidge(landmarks, gamma, alpha, seed)
        self.centre: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _unit(self, c: np.ndarray) -> np.ndarray:
        assert self.centre is not None and self.scale is not None, "fit first"
        z = (c - self.centre) / self.scale
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def fit_oof(self, c: np.ndarray, y: np.ndarray, folds: np.ndarray, n_folds: int) -> np.ndarray:
        """Fit on colour features `c` (targets `y`) and return out-of-fold scores (see `ImageRidge.fit_oof`)."""
        self.centre = c.mean(0).astype(np.float32)
        self.scale = (c.std(0) + 1e-6).astype(np.float32)
        return self.ridge.fit_oof(self._unit(c), y, folds, n_folds)

    def decision(self, c: np.ndarray) -> np.ndarray:
        return self.ridge.decision(self._unit(c))
