"""`CatalogueModel`: category paths and tags for products, from their titles and image embeddings.

Fit: title TF-IDF → linear SVMs, image embeddings → ridge and nearest-neighbour votes, image colour
features (when the images have them) → kernel ridge, each giving
out-of-fold class scores for every task (the category, each single-valued attribute, the multi-label
tags); one LightGBM re-ranker per task learns from those scores; a validation share of the products
(never scored by a base model that saw them) calibrates the probabilities and tunes the tag thresholds
(the single-valued attributes' together, for micro-F1 over all of them; each multi-valued tag for its F1).
"""

from __future__ import annotations

import json
import signal
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from joblib import Parallel, delayed

from tagkit.cpus import one_blas_thread, usable_cpus
from tagkit.dataset import Dataset
from tagkit.models.booster import load_booster
from tagkit.models.knn import NeighbourIndex, votes
from tagkit.models.labels import NONE_VALUE, MultiTask, SingleTask, TagPlan, category_task, tag_tasks
from tagkit.models.linear import ColourRidge, ImageRidge, TextLinear, TextNB
from tagkit.models.prediction import Prediction
from tagkit.models.rerank import CONDITIONS, TEXT_BLOCKS, Reranker, condition_of
from tagkit.models.text_features import TextFeatures
from tagkit.product import Tag

FORMAT_VERSION = 2
MIN_IMAGES = 20  # fewer training images than this: no image models


def stable_hash(text: str, salt: str = "") -> int:
    return zlib.crc32(f"{salt}{text}".encode())


class CatalogueModel:
    """Predicts a category path (top-k, calibrated) and tags for each product.

    Parameters: `seed`; `folds` (cross-validation folds for the out-of-fold base scores);
    `validation_share` (held-out share when `fit` gets no validation set); `min_tag_count` (tags seen
    fewer times are reported as too rare); `C` (text SVM); `knn_k`, `knn_dim`, `knn_temperature`
    (image neighbour votes on `knn_dim` principal components); `ridge_alpha`, `landmarks`, `gamma` (image
    ridge on those components; `landmarks` > 0 = RBF kernel features); `colour_landmarks`, `colour_gamma`,
    `colour_alpha` (kernel ridge on the images' colour features); `n_candidates`, `rounds`,
    `learning_rate` (re-ranker); `n_jobs`.

    After `fit`, `validation_predictions` maps each validation product's id to its Prediction from held-out scores
    (base scores out of fold, re-rankers fitted without it), for choosing what to merge with; it is not saved.
    """

    def __init__(self, seed: int = 0, *, folds: int = 3, validation_share: float = 0.15, min_tag_count: int = 5,
                 C: float = 1.0, ridge_alpha: float = 0.01, landmarks: int = 5000, gamma: float = 0.7,
                 knn_k: int = 10, knn_dim: int = 256, knn_temperature: float = 0.05, colour_landmarks: int = 2000,
                 colour_gamma: float = 1.5, colour_alpha: float = 0.01, n_candidates: int = 10,
                 rounds: int = 300, learning_rate: float = 0.1, n_jobs: int | None = None) -> None:
        self.seed = seed
        self.folds = folds
        self.validation_share = validation_share
        self.min_tag_count = min_tag_count
        self.C = C
        self.ridge_alpha = ridge_alpha
        self.landmarks = landmarks
        self.gamma = gamma
        self.knn_k = knn_k
        self.knn_dim = knn_dim
        self.knn_temperature = knn_temperature
        self.colour_landmarks = colour_landmarks
        self.colour_gamma = colour_gamma
        self.colour_alpha = colour_alpha
        self.n_candidates = n_candidates
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.n_jobs = n_jobs
        self.report: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.tasks: list[SingleTask] = []
        self.multi: MultiTask | None = None
        self.text: TextFeatures | None = None
        self.text_models: dict[str, TextLinear] = {}
        self.nb_models: dict[str, TextNB] = {}
        self.ridge: ImageRidge | None = None
        self.ridge_columns: dict[str, slice] = {}
        self.index: NeighbourIndex | None = None
        self.neighbour_labels: dict[str, np.ndarray] = {}
        self.colour: ColourRidge | None = None
        self.rerankers: dict[str, Reranker] = {}
        self.dim = 0
        self.colour_dim = 0

    def get_params(self) -> dict[str, Any]:
        keys = ("seed", "folds", "validation_share", "min_tag_count", "C", "ridge_alpha", "landmarks", "gamma",
                "knn_k", "knn_dim", "knn_temperature", "colour_landmarks", "colour_gamma", "colour_alpha",
                "n_candidates", "rounds", "learning_rate", "n_jobs")
        return {k: getattr(self, k) for k in keys}

    @property
    def _jobs(self) -> int:
        return max(1, self.n_jobs or min(usable_cpus(), 4))

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, train: Dataset, validation: Dataset | None = None) -> CatalogueModel:
        """Learn from `train`. Without `validation`, a fixed share of `train` (chosen by a hash of the
        product id) is held out from the re-rankers to calibrate and tune thresholds. Validation products
        are only ever scored by base models fitted without them; they do join the final base models."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        self._reset()
        if validation is not None and len(validation):
            data = _concat(train, validation)
            val = np.arange(len(data)) >= len(train)
        else:
            data = train
            val = np.array([stable_hash(i, "val") % 10_000 < self.validation_share * 10_000 for i in data.ids])
            if val.sum() < min(20, len(data) // 5):
                val = np.zeros(len(data), dtype=bool)
        n = len(data)
        self.dim = int(data.embeddings.shape[1])
        self.colour_dim = data.colour_dim
        folds = np.array([stable_hash(i, f"fold{self.seed}") % self.folds for i in data.ids])
        fit_rows, val_rows = np.flatnonzero(~val), np.flatnonzero(val)

        category = category_task(data.categories)
        plan: TagPlan = tag_tasks(data.tags, self.min_tag_count, data.tags_known)
        self.tasks = ([category] if category else []) + plan.single
        self.multi = plan.multi
        tick = time.perf_counter()

        # text
        norm, has_text = TextFeatures.prepare(data.texts)
        x_text = None
        if has_text.sum() >= 2:
            self.text = TextFeatures().fit([t for t, h in zip(norm, has_text, strict=True) if h])
            x_text = self.text.transform(norm)
        timings["text_features"] = time.perf_counter() - tick
        has_image = data.has_image.copy()
        use_images = has_image.sum() >= MIN_IMAGES

        blocks: dict[str, dict[str, np.ndarray]] = {t.name: {} for t in self.tasks}
        if self.multi is not None:
            blocks["tags"] = {}
        targets = self._targets()

        tick = time.perf_counter()
        if x_text is not None:
            oof = self._fit_text(x_text, has_text, folds, targets)
            for name, scores in oof.items():
                blocks[name]["text"] = scores
            for task in self.tasks:
                blocks[task.name]["nb"] = self._fit_nb(x_text, has_text, folds, task)
        timings["text_models"] = time.perf_counter() - tick

        tick = time.perf_counter()
        if use_images:
            with one_blas_thread():  # the same model whatever the cores
                self._fit_images(data.embeddings, has_image, folds, targets, blocks)
        timings["image_models"] = time.perf_counter() - tick

        tick = time.perf_counter()
        self.report = {"products": n, "validation_products": int(val.sum()),
                       "with_title": int(has_text.sum()), "with_image": int(has_image.sum()),
                       "inputs": {"text": x_text is not None, "image": bool(use_images)},
                       "tasks": {}, "tags_too_rare": plan.rare, "min_tag_count": self.min_tag_count,
                       "multi_valued_attributes": plan.multi_valued,
                       "single_valued_attributes": [t.name for t in plan.single]}
        for task in self.tasks:
            prior = _log_prior(task.y, len(task.classes))
            rr = self._reranker("single")
            rr.fit(blocks[task.name], task.y, fit_rows, val_rows, has_text, has_image, prior, task.hierarchy)
            self.rerankers[task.name] = rr
        if self.multi is not None:
            prior = np.log(np.maximum(self.multi.y[self.multi.labelled].mean(0), 1e-6))
            rr = self._reranker("multi")
            labelled_fit = fit_rows[self.multi.labelled[fit_rows]]
            labelled_val = val_rows[self.multi.labelled[val_rows]]
            rr.fit(blocks["tags"], self.multi.y, labelled_fit, labelled_val, has_text, has_image, prior)
            self.rerankers["tags"] = rr
        timings["rerankers"] = time.perf_counter() - tick

        tick = time.perf_counter()
        self._tune(blocks, val_rows, has_text, has_image, data)
        timings["thresholds"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started
        self.report["seconds"] = {k: round(v, 2) for k, v in timings.items()}
        return self

    def _reranker(self, kind: str) -> Reranker:
        return Reranker(kind, n_candidates=self.n_candidates, rounds=self.rounds, learning_rate=self.learning_rate,
                        seed=self.seed, n_jobs=self._jobs)

    def _targets(self) -> dict[str, np.ndarray]:
        """0/1 target matrices per task (rows with an unknown label are all zero)."""
        out = {}
        for task in self.tasks:
            y = np.zeros((len(task.y), len(task.classes)), dtype=np.float32)
            known = task.y >= 0
            y[np.flatnonzero(known), task.y[known]] = 1.0
            out[task.name] = y
        if self.multi is not None:
            out["tags"] = self.multi.y
        return out

    def _fit_text(self, x, has_text, folds, targets) -> dict[str, np.ndarray]:
        """Text SVMs: out-of-fold scores per task, and the final models (fitted on every product).

        The fits run in worker processes, not threads: liblinear's random generator is global, so two
        fits at once in one process would not give the same model twice."""
        tasks: list[tuple[str, SingleTask | MultiTask]] = [(t.name, t) for t in self.tasks]
        if self.multi is not None:
            tasks.append(("tags", self.multi))
        jobs = [(name, task, k) for name, task in tasks for k in range(-1, self.folds)]
        run = delayed(_fit_text_job)
        args = (x, has_text, folds, self.C, self.seed)
        if self._jobs > 1 and len(jobs) > 1 and x.shape[0] >= 2000:
            start_workers(self._jobs)
            try:
                results = Parallel(n_jobs=self._jobs, backend="loky")(run(*args, task, k) for _, task, k in jobs)
            finally:
                stop_workers()
        else:
            results = [_fit_text_job(*args, task, k) for _, task, k in jobs]
        out = {name: np.full(targets[name].shape, np.nan, dtype=np.float32) for name, _ in tasks}
        for (name, _, k), result in zip(jobs, results, strict=True):
            if k < 0:
                self.text_models[name] = result
            else:
                rows = np.flatnonzero((folds == k) & has_text)
                out[name][rows] = result
        return out

    def _fit_nb(self, x, has_text, folds, task: SingleTask) -> np.ndarray:
        out = np.full((len(task.y), len(task.classes)), np.nan, dtype=np.float32)
        for k in range(self.folds):
            train = np.where((folds != k) & has_text, task.y, -1)
            rows = np.flatnonzero((folds == k) & has_text)
            out[rows] = TextNB().fit_multiclass(x, train, len(task.classes)).decision(x[rows])
        self.nb_models[task.name] = TextNB().fit_multiclass(x, np.where(has_text, task.y, -1), len(task.classes))
        return out

    def _fit_images(self, features, has_image, folds, targets, blocks) -> None:
        e, colours = self._split(features)
        rows = np.flatnonzero(has_image)
        names = list(targets)
        y = np.hstack([targets[name][rows] for name in names])
        start = 0
        for name in names:
            width = targets[name].shape[1]
            self.ridge_columns[name] = slice(start, start + width)
            start += width
        self.index = NeighbourIndex(self.knn_dim, self.knn_k, self.knn_temperature).fit(e[rows])
        self.ridge = ImageRidge(self.landmarks, self.gamma, self.ridge_alpha, self.seed)
        oof = self.ridge.fit_oof(self.index.vectors, y, folds[rows], self.folds)
        idx, w = self.index.query(None)
        for name in names:
            full = np.full(targets[name].shape, np.nan, dtype=np.float32)
            full[rows] = oof[:, self.ridge_columns[name]]
            blocks[name]["ridge"] = full
            self.neighbour_labels[name] = (targets[name][rows] > 0).astype(np.uint8)
            v = np.full(targets[name].shape, np.nan, dtype=np.float32)
            v[rows] = votes(idx, w, self.neighbour_labels[name])
            blocks[name]["knn"] = v
        if colours is not None:
            self.colour = ColourRidge(self.colour_landmarks, self.colour_gamma, self.colour_alpha, self.seed)
            oof = self.colour.fit_oof(colours[rows], y, folds[rows], self.folds)
            for name in names:
                full = np.full(targets[name].shape, np.nan, dtype=np.float32)
                full[rows] = oof[:, self.ridge_columns[name]]
                blocks[name]["colour"] = full

    def _split(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Image features → the image model's embeddings and the colour features (None without them)."""
        if not self.colour_dim:
            return features, None
        return features[:, : -self.colour_dim], features[:, -self.colour_dim:]

    def _tune(self, blocks, val_rows, has_text, has_image, data: Dataset) -> None:
        """Thresholds and validation metrics from the validation rows under each input condition."""
        metrics: dict[str, Any] = {}
        self.validation_predictions = {}
        if not len(val_rows):
            self.report["validation"] = metrics
            self.report["thresholds"] = {t.name: _by_condition(t.thresholds) for t in self.tasks if not t.is_category}
            if self.multi is not None:
                self.multi.thresholds = np.full((3, len(self.multi.classes)), 0.5, dtype=np.float32)
            return
        conditions = []
        for c, name in enumerate(CONDITIONS):
            ht = has_text[val_rows] & (c != 1)
            hi = has_image[val_rows] & (c != 2)
            changed = (ht != has_text[val_rows]).any() or (hi != has_image[val_rows]).any()
            if c == 0 or (changed and (ht | hi).any()):  # no "image" for a catalogue without images
                conditions.append((name, ht, hi))
        effective = np.concatenate([condition_of(ht, hi) for _, ht, hi in conditions])
        outputs = {}
        attributes: list[tuple[SingleTask, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for task in self.tasks:
            rr = self.rerankers[task.name]
            outs = [rr.predict(_mask_blocks(blocks[task.name], val_rows, ht, hi), ht, hi) for _, ht, hi in conditions]
            outputs[task.name] = outs
            truth = task.y[val_rows]
            if task.is_category:
                for (cname, _, _), (cand, _) in zip(conditions, outs, strict=True):
                    known = truth >= 0
                    metrics.setdefault(cname, {})["category_top1"] = float((cand[known, 0] == truth[known]).mean())
                    metrics[cname]["category_top3"] = float((cand[known, :3] == truth[known, None]).any(1).mean())
                continue
            none = task.classes.index(NONE_VALUE) if NONE_VALUE in task.classes else -1
            best, score = [], []
            for cand, p in outs:
                first = np.where(cand[:, 0] == none, cand[:, 1] if cand.shape[1] > 1 else -1, cand[:, 0])
                pf = np.where(cand[:, 0] == none, p[:, 1] if p.shape[1] > 1 else 0.0, p[:, 0])
                best.append(first)
                score.append(pf)
            b, s, t = np.concatenate(best), np.concatenate(score), np.concatenate([truth] * len(outs))
            attributes.append((task, s, b == t, t != none, t >= 0))
        if attributes:
            known_any = np.logical_or.reduce([known for *_, known in attributes])
            thresholds = _thresholds_by_condition(
                lambda m: _micro_thresholds([(s[m & k], right[m & k], int(gold[m & k].sum()))
                                             for _, s, right, gold, k in attributes]), known_any, effective)
            for j, (task, *_) in enumerate(attributes):
                task.thresholds = thresholds[:, j]
        if self.multi is not None:
            rr = self.rerankers["tags"]
            sel = self.multi.labelled[val_rows]
            rows = val_rows[sel]
            outs_multi = [rr.predict(_mask_blocks(blocks["tags"], rows, ht[sel], hi[sel]), ht[sel], hi[sel])
                          for _, ht, hi in conditions]
            cand = np.concatenate([c for c, _ in outs_multi])
            p = np.concatenate([q for _, q in outs_multi])
            y = np.concatenate([self.multi.y[rows]] * len(outs_multi))
            per_row = np.concatenate([e[sel] for e in np.split(effective, len(conditions))])
            k = len(self.multi.classes)
            self.multi.thresholds = _thresholds_by_condition(
                lambda m: _tag_thresholds(cand[m], p[m], y[m], k), np.ones(len(cand), bool), per_row)
        self.report["thresholds"] = {t.name: _by_condition(t.thresholds) for t in self.tasks if not t.is_category}
        if self.multi is not None:
            self.report["thresholds"]["tags"] = {str(tag): _by_condition(th) for tag, th in
                                                 zip(self.multi.classes, self.multi.thresholds.T, strict=True)}
        # tag micro-F1 per condition, from the whole prediction path
        for c, (cname, ht, hi) in enumerate(conditions):
            preds = self._assemble(len(val_rows), {name: outs[c] for name, outs in outputs.items()},
                                   self._multi_out(blocks, val_rows, ht, hi), ht, hi, top_k=3)
            if c == 0:  # the products' own inputs: what `predict` would say of them, from held-out scores
                self.validation_predictions = dict(zip((data.ids[i] for i in val_rows), preds, strict=True))
            truth_tags = [data.tags[i] for i in val_rows]
            from tagkit.models.metrics import tag_metrics

            tm = tag_metrics(truth_tags, [[t for t, _ in p.tags] for p in preds])
            metrics.setdefault(cname, {})["tag_micro_f1"] = round(tm["micro_f1"], 4)
            metrics[cname]["tag_macro_f1"] = round(tm["macro_f1"], 4)
        self.report["validation"] = metrics
        self.report["candidate_recall"] = {name: rr.candidate_recall for name, rr in self.rerankers.items()}
        self.report["rounds"] = {name: rr.best_rounds for name, rr in self.rerankers.items()}
        self.report["temperatures"] = {name: [round(t, 3) for t in rr.temperatures]
                                       for name, rr in self.rerankers.items() if rr.kind == "single"}
        self.report["outside_logits"] = {name: [None if b is None else round(b, 3) for b in rr.outside]
                                         for name, rr in self.rerankers.items() if rr.kind == "single"}
        self.report["classes"] = {t.name: len(t.classes) for t in self.tasks}
        if self.multi is not None:
            self.report["classes"]["tags"] = len(self.multi.classes)

    def _multi_out(self, blocks, rows, ht, hi):
        if self.multi is None:
            return None
        return self.rerankers["tags"].predict(_mask_blocks(blocks["tags"], rows, ht, hi), ht, hi)

    # -- prediction --------------------------------------------------------------------------------

    def _base_scores(self, data: Dataset) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
        n = len(data)
        norm, has_text = TextFeatures.prepare(data.texts)
        has_image = data.has_image.astype(bool) if self.ridge is not None else np.zeros(n, dtype=bool)
        names = [t.name for t in self.tasks] + (["tags"] if self.multi is not None else [])
        widths = {t.name: len(t.classes) for t in self.tasks}
        if self.multi is not None:
            widths["tags"] = len(self.multi.classes)
        blocks: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
        if self.text is not None:
            rows = np.flatnonzero(has_text)
            x = self.text.transform([norm[i] for i in rows])
            for name in names:
                s = np.full((n, widths[name]), np.nan, dtype=np.float32)
                s[rows] = self.text_models[name].decision(x)
                blocks[name]["text"] = s
                if name in self.nb_models:
                    s = np.full((n, widths[name]), np.nan, dtype=np.float32)
                    s[rows] = self.nb_models[name].decision(x)
                    blocks[name]["nb"] = s
        else:
            has_text = np.zeros(n, dtype=bool)
        if self.ridge is not None and self.index is not None:
            if data.embeddings.shape[1] != self.dim or data.colour_dim != self.colour_dim:
                raise ValueError(f"image features have {data.embeddings.shape[1]} dimensions ({data.colour_dim} of "
                                 f"colour); this model was trained on {self.dim} ({self.colour_dim} of colour)")
            rows = np.flatnonzero(has_image)
            e, colours = self._split(data.embeddings[rows])
            z = self.index.reduce(e)
            ridge = self.ridge.decision(z)
            idx, w = self.index.query(z)
            colour = self.colour.decision(colours) if self.colour is not None and colours is not None else None
            for name in names:
                s = np.full((n, widths[name]), np.nan, dtype=np.float32)
                s[rows] = ridge[:, self.ridge_columns[name]]
                blocks[name]["ridge"] = s
                v = np.full((n, widths[name]), np.nan, dtype=np.float32)
                v[rows] = votes(idx, w, self.neighbour_labels[name])
                blocks[name]["knn"] = v
                if colour is not None:
                    c = np.full((n, widths[name]), np.nan, dtype=np.float32)
                    c[rows] = colour[:, self.ridge_columns[name]]
                    blocks[name]["colour"] = c
        return blocks, has_text, has_image

    def predict(self, data: Dataset, top_k: int = 3) -> list[Prediction]:
        """One Prediction per product of `data`, in order (the same whatever the cores: `one_blas_thread`)."""
        if not self.rerankers:
            raise RuntimeError("the model is not fitted")
        with one_blas_thread():
            blocks, has_text, has_image = self._base_scores(data)
        outs = {t.name: self.rerankers[t.name].predict(blocks[t.name], has_text, has_image) for t in self.tasks}
        multi = self.rerankers["tags"].predict(blocks["tags"], has_text, has_image) if self.multi else None
        return self._assemble(len(data), outs, multi, has_text, has_image, top_k)

    def _assemble(self, n, outs, multi, has_text, has_image, top_k) -> list[Prediction]:
        preds = []
        no_input = ~(has_text | has_image)
        cond = np.minimum(condition_of(has_text, has_image), 2)
        for i in range(n):
            if no_input[i]:  # the scores would be the training prior: nothing to tell about this product
                preds.append(Prediction(None, 0.0, no_input=True))
                continue
            category, score, alternatives = None, 0.0, []
            tags: list[tuple[Tag, float]] = []
            candidates: list[tuple[Tag, float]] = []
            for task in self.tasks:
                cand, p = outs[task.name]
                if task.is_category:
                    category, score = task.classes[cand[i, 0]], float(p[i, 0])
                    alternatives = [(task.classes[c], float(q)) for c, q in zip(cand[i, 1:top_k], p[i, 1:top_k],
                                                                                 strict=True)]
                    continue
                accepted = False
                for c, q in zip(cand[i], p[i], strict=True):
                    value = task.classes[c]
                    if value == NONE_VALUE:
                        continue
                    tag = Tag(task.name, value)
                    if not accepted and q >= task.thresholds[cond[i]]:
                        tags.append((tag, float(q)))
                        accepted = True
                    elif q >= 0.05 and len([1 for t, _ in candidates if t.name == task.name]) < 3:
                        candidates.append((tag, float(q)))
            if multi is not None and self.multi is not None:
                cand, p = multi
                for c, q in zip(cand[i], p[i], strict=True):
                    tag = self.multi.classes[c]
                    if q >= self.multi.thresholds[cond[i], c]:
                        tags.append((tag, float(q)))
                    elif q >= 0.05:
                        candidates.append((tag, float(q)))
            tags.sort(key=lambda tq: (-tq[1], tq[0]))
            candidates.sort(key=lambda tq: (-tq[1], tq[0]))
            preds.append(Prediction(category, score, alternatives, tags, candidates[:10]))
        return preds

    # -- storage -----------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write the model to `folder`: `manifest.json`, `model.joblib`, one LightGBM text file per task."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        boosters = {name: rr.booster for name, rr in self.rerankers.items()}
        files = {}
        for i, (name, booster) in enumerate(sorted(boosters.items())):
            file = f"rerank_{i}.txt"
            assert booster is not None
            booster.save_model(str(folder / file))
            files[name] = file
        held_out = self.__dict__.pop("validation_predictions", None)  # of this fit only: not saved
        try:
            for rr in self.rerankers.values():
                rr.booster = None
            joblib.dump(self, folder / "model.joblib")  # not compressed: `load` maps its arrays from the file
        finally:
            for name, rr in self.rerankers.items():
                rr.booster = boosters[name]
            if held_out is not None:
                self.validation_predictions = held_out
        manifest = {"format": "tagkit-catalogue-model", "version": FORMAT_VERSION, "params": self.get_params(),
                    "image_dim": self.dim, "rerankers": files, "report": self.report}
        (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str),
                                              encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> CatalogueModel:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != "tagkit-catalogue-model" or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: not a tagkit catalogue model of format version {FORMAT_VERSION}")
        model = joblib.load(folder / "model.joblib", mmap_mode="r")  # arrays are read-only pages of the file
        if not isinstance(model, cls):
            raise ValueError(f"{folder}/model.joblib does not hold a {cls.__name__}")
        # A model saved before a parameter or part existed gets its default (no colour model, for one).
        for name, value in vars(cls()).items():
            model.__dict__.setdefault(name, value)
        for name, file in manifest["rerankers"].items():
            model.rerankers[name].booster = load_booster(folder / file)
        return model


def start_workers(jobs: int) -> None:
    """Start the worker processes the text fits run in (joblib's reusable loky executor; the `Parallel` call after
    this one, with the same arguments, takes them over) with Ctrl-C blocked. A terminal sends Ctrl-C to every
    process of the command, and a worker it reached while starting printed a traceback of its own under tagkit's
    message. tagkit itself still stops: the signal goes to another of its threads, or waits until this returns."""
    from multiprocessing import resource_tracker

    from joblib.externals.loky.backend import resource_tracker as loky_tracker

    resource_tracker.ensure_running()  # started later, they would unblock the signal when they are
    loky_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:  # the workers inherit the blocked signal, also across exec
        Parallel(n_jobs=jobs, backend="loky")(delayed(int)(0) for _ in range(jobs))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop_workers() -> None:
    """Stop the worker processes `start_workers` started, once the fits are done: a script or notebook that trains
    would otherwise keep them (about 130 MB each) for loky's five idle minutes."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # the one joblib's `Parallel` reuses, if it is running
    if executor is not None:
        executor.shutdown(wait=True)


def _fit_text_job(x, has_text: np.ndarray, folds: np.ndarray, C: float, seed: int, task: SingleTask | MultiTask,
                  fold: int) -> TextLinear | np.ndarray:
    """Fit one task's text SVM without fold `fold` and score that fold (fold -1: fit on all, return the model)."""
    model = TextLinear(C=C, seed=seed)
    train = has_text & (folds != fold) if fold >= 0 else has_text
    if isinstance(task, SingleTask):
        model.fit_multiclass(x, np.where(train, task.y, -1), len(task.classes))
    else:
        model.fit_multilabel(x, task.y, np.flatnonzero(train & task.labelled))
    if fold < 0:
        return model
    return model.decision(x[np.flatnonzero((folds == fold) & has_text)])


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(ids=a.ids + b.ids, texts=a.texts + b.texts, embeddings=np.vstack([a.embeddings, b.embeddings]),
                   has_image=np.concatenate([a.has_image, b.has_image]), categories=a.categories + b.categories,
                   tags=a.tags + b.tags, colour_dim=a.colour_dim, tags_reviewed=a.tags_reviewed | b.tags_reviewed)


def _log_prior(y: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(y[y >= 0], minlength=k).astype(np.float64) + 0.5
    return np.log(counts / counts.sum()).astype(np.float32)


def _mask_blocks(blocks: dict[str, np.ndarray], rows: np.ndarray, ht: np.ndarray, hi: np.ndarray):
    out = {}
    for name, scores in blocks.items():
        part = scores[rows].copy()
        part[~(ht if name in TEXT_BLOCKS else hi)] = np.nan
        out[name] = part
    return out


def _best_threshold(score: np.ndarray, correct: np.ndarray, positives: int) -> float:
    """The threshold on the best value's score maximising F1 (a prediction is right when `correct`)."""
    if not len(score) or positives == 0:
        return 0.5
    return _threshold_for_micro_f1(score, correct, positives, allow_none=False)


def _threshold_for_micro_f1(score: np.ndarray, correct: np.ndarray, positives: int, tp_other: int = 0,
                            predicted_other: int = 0, *, allow_none: bool = True) -> float:
    """The threshold on `score` maximising micro-F1 = 2 TP / (predicted + `positives`) when these predictions
    join `tp_other` right ones out of `predicted_other` made elsewhere (`positives` counts all gold values).
    With `allow_none`, predicting none of these is one of the choices (the threshold is then halfway between the
    highest score and 1)."""
    order = np.argsort(-score, kind="stable")
    tp = tp_other + np.concatenate([[0], np.cumsum(correct[order])])
    predicted = predicted_other + np.arange(len(score) + 1)
    f1 = 2 * tp / np.maximum(predicted + positives, 1)
    if not allow_none:
        f1[0] = -1.0
    best = int(np.argmax(f1))
    if best == 0:
        return (float(score[order[0]]) + 1.0) / 2 if len(score) else 0.5
    below = score[order[best]] if best < len(score) else 0.0
    return float((score[order[best - 1]] + below) / 2)


def _micro_thresholds(attributes: list[tuple[np.ndarray, np.ndarray, int]], rounds: int = 3) -> np.ndarray:
    """One threshold per single-valued attribute (its best value's score, whether that value is right, its gold
    count) that together maximise the tags' micro-F1: each attribute's own best threshold first, then each in
    turn re-tuned given the others' predictions (a few rounds of coordinate ascent). A threshold tuned for an
    attribute's own F1 keeps too many weak guesses of a hard attribute (colour) when F1 counts all tags."""
    thresholds = [_best_threshold(s, right, gold) for s, right, gold in attributes]
    positives = sum(gold for *_, gold in attributes)
    if positives == 0:
        return np.asarray(thresholds, dtype=np.float32)
    for _ in range(rounds):
        for i, (s, right, _) in enumerate(attributes):
            others = [(s2 >= t2, right2) for j, ((s2, right2, _), t2) in enumerate(zip(attributes, thresholds,
                                                                                       strict=True)) if j != i]
            tp_other = sum(int((made & r).sum()) for made, r in others)
            predicted_other = sum(int(made.sum()) for made, _ in others)
            thresholds[i] = _threshold_for_micro_f1(s, right, positives, tp_other, predicted_other)
    return np.asarray(thresholds, dtype=np.float32)


def _thresholds_by_condition(tune: Callable[[np.ndarray], Any], rows: np.ndarray, condition: np.ndarray,
                             min_rows: int = 50) -> np.ndarray:
    """`tune(mask)` for each input condition (both, image, text) with at least `min_rows` of `rows`;
    the other conditions get `tune` over all of `rows`."""
    pooled = np.asarray(tune(rows), dtype=np.float32)
    out = []
    for c in range(len(CONDITIONS)):
        sel = rows & (condition == c)
        out.append(np.asarray(tune(sel), dtype=np.float32) if sel.sum() >= min_rows else pooled)
    return np.stack(out)


def _by_condition(thresholds: np.ndarray) -> dict[str, float]:
    return {name: round(float(t), 4) for name, t in zip(CONDITIONS, thresholds, strict=True)}


def _tag_thresholds(cand: np.ndarray, p: np.ndarray, y: np.ndarray, k: int, min_positives: int = 5) -> np.ndarray:
    """Per-tag thresholds maximising F1 on validation rows (candidates `cand`, their scores `p`, truth
    matrix `y`); tags with fewer validation positives than `min_positives` share one."""
    hit = np.take_along_axis(y, cand, 1) > 0
    positives = y.sum(0)
    shared = _best_threshold(p.ravel(), hit.ravel(), int(positives.sum()))
    out = np.full(k, shared, dtype=np.float32)
    for j in np.unique(cand):
        if positives[j] >= min_positives:
            sel = cand == j
            out[j] = _best_threshold(p[sel], hit[sel], int(positives[j]))
    return out
