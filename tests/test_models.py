"""CatalogueModel on small real data: every input combination, tags, storage, determinism, metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import hstack as sp_hstack

from tagkit.catalogue import read_input
from tagkit.config import load_config
from tagkit.cpus import usable_cpus
from tagkit.dataset import Dataset
from tagkit.image import ImageEmbedder
from tagkit.models import CatalogueModel, Prediction
from tagkit.models.metrics import category_metrics, evaluate, tag_metrics
from tagkit.product import Product, Tag
from tagkit.tagger import Tagger
from tagkit.taxonomy import parse_taxonomy

REPO = Path(__file__).resolve().parent.parent
FAST = {"folds": 2, "rounds": 40, "knn_k": 5, "knn_dim": 32, "n_jobs": 2}


def _products(source: Path, config: str) -> list[Product]:
    mapping = load_config(REPO / "examples" / config).mapping
    return [r for r in read_input(source, mapping=mapping) if isinstance(r, Product)]


@pytest.fixture(scope="session")
def fashion(fashion_sample: Path) -> tuple[Dataset, Dataset]:
    """The 300 sample products with real embeddings, split 240 / 60 by position."""
    products = _products(fashion_sample / "styles.csv", "fashion.yaml")
    for p in products:  # the images extracted next to styles.csv
        p.image = str(fashion_sample / "images" / f"{p.id}.jpg")
    embedder = ImageEmbedder("int8")
    vectors = {key: v for key, v in embedder.embed([(p.id, p.image) for p in products]) if isinstance(v, np.ndarray)}
    data = Dataset.from_products(products, vectors, embedder.dim, embedder.colour_dim)
    assert data.has_image.all()
    return data.subset(np.arange(240)), data.subset(np.arange(240, len(data)))


@pytest.fixture(scope="session")
def fashion_model(fashion: tuple[Dataset, Dataset]) -> CatalogueModel:
    return CatalogueModel(seed=0, **FAST).fit(fashion[0])


@pytest.fixture(scope="session")
def torob(shared_data: Path) -> Dataset:
    """800 Torob products (Persian titles, no images, multi-valued attributes; grouped by type in the file)."""
    products = _products(shared_data / "torob_attributes" / "products.jsonl", "torob.yaml")[:800]
    return Dataset.from_products(products, {}, 16)


def _accuracy(data: Dataset, preds: list[Prediction]) -> float:
    return float(np.mean([p.category == c for p, c in zip(preds, data.categories, strict=True)]))


def _check_shapes(model: CatalogueModel, train: Dataset, preds: list[Prediction], top_k: int = 3) -> None:
    paths = set(train.categories)
    single = set(model.report["single_valued_attributes"])
    for p in preds:
        assert p.category in paths
        assert all(path in paths for path, _ in p.alternatives)
        assert len(p.alternatives) == top_k - 1
        assert p.category not in [a for a, _ in p.alternatives]
        scores = [p.category_score] + [s for _, s in p.alternatives]
        assert scores == sorted(scores, reverse=True)
        assert 0.0 <= sum(scores) <= 1.0 + 1e-5
        names = Counter(t.name for t, _ in p.tags)
        assert all(names[name] <= 1 for name in single), p.tags
        assert not {t for t, _ in p.tags} & {t for t, _ in p.candidates}


def test_a_stray_second_value_does_not_make_an_attribute_multi_valued(fashion):
    """One product carrying two colours (a review decision accepting a second one) leaves colour single-valued,
    and that product's colour unknown; when several products do, colour is multi-valued."""
    from tagkit.models.labels import tag_tasks

    tags = list(fashion[0].tags)
    colours = sorted({t for ts in tags for t in ts if t.name == "color"}, key=str)
    assert len(colours) > 2 and "color" in {t.name for t in tags[0]}
    stray = [(*tags[0], next(c for c in colours if c not in tags[0])), *tags[1:]]
    plan = tag_tasks(stray)
    assert "color" not in plan.multi_valued
    colour = next(task for task in plan.single if task.name == "color")
    assert colour.y[0] == -1 and (colour.y[1:] >= 0).sum() > 0.9 * (len(tags) - 1)
    many = [(*ts, next(c for c in colours if c not in ts)) if i % 10 == 0 else ts for i, ts in enumerate(tags)]
    assert "color" in tag_tasks(many).multi_valued


def test_the_category_held_to_a_taxonomy_does_not_depend_on_top_k(fashion, fashion_model):
    """Paths that a taxonomy makes one add up over all of the model's candidate paths, not only the top-k shown.
    Here every path but the one of the least sure prediction is called `Other`: it wins wherever the scores of
    those paths outweigh that one's, whatever the top-k."""
    test = fashion[1].without_text()
    raw = fashion_model.predict(test, top_k=fashion_model.n_candidates)
    top = min(raw, key=lambda p: p.category_score).category
    paths = {path for p in raw for path in [p.category, *(a for a, _ in p.alternatives)]}
    tree: dict = {"Other": None}
    node = tree
    for name in top:
        node = node.setdefault(name, {})
    taxonomy = parse_taxonomy({"categories": tree,
                               "category_synonyms": {" > ".join(path): "Other" for path in paths if path != top}})
    held = {k: Tagger(fashion_model, None, taxonomy).predict(test, top_k=k) for k in (1, 2, 3, 10)}
    expected = []
    for p in raw:
        other = sum(score for path, score in [(p.category, p.category_score), *p.alternatives] if path != top)
        expected.append(("Other",) if p.category != top or other > p.category_score else top)
    assert sum(e == ("Other",) and p.category == top for e, p in zip(expected, raw, strict=True)) >= 1
    for k, predictions in held.items():
        assert [p.category for p in predictions] == expected
        assert all(len(p.alternatives) <= min(k, 2) - 1 for p in predictions)


def test_title_and_image(fashion, fashion_model):
    train, test = fashion
    preds = fashion_model.predict(test)
    _check_shapes(fashion_model, train, preds)
    assert _accuracy(test, preds) >= 0.75
    assert tag_metrics(test.tags, [[t for t, _ in p.tags] for p in preds])["micro_f1"] >= 0.6
    assert fashion_model.report["single_valued_attributes"] == ["color", "usage"]
    assert fashion_model.report["inputs"] == {"text": True, "image": True}


def test_missing_modality_at_predict(fashion, fashion_model):
    train, test = fashion
    image_only = fashion_model.predict(test.without_text())
    title_only = fashion_model.predict(test.without_images())
    for preds in (image_only, title_only):
        _check_shapes(fashion_model, train, preds)
        assert not any(p.no_input for p in preds)
    assert _accuracy(test, title_only) >= 0.7
    # a whole input without titles must not collapse onto a few classes
    assert _accuracy(test, image_only) >= 0.5
    assert len({p.category for p in image_only}) >= 8
    # mixed: some products lose the title, some the image, one loses both
    mixed = Dataset(test.ids, [t if i % 3 else "" for i, t in enumerate(test.texts)], test.embeddings.copy(),
                    test.has_image.copy(), test.categories, test.tags, test.colour_dim)
    mixed.has_image[1::4] = False
    mixed.embeddings[1::4] = 0
    mixed.texts[0], mixed.has_image[0] = "", False
    preds = fashion_model.predict(mixed)
    neither = ~(mixed.has_text | mixed.has_image)
    assert [p.no_input for p in preds] == neither.tolist()
    # nothing to predict from: no category (the training prior would pass for an answer), no tags
    assert preds[0] == Prediction(None, 0.0, no_input=True)
    _check_shapes(fashion_model, train, [p for p in preds if not p.no_input])
    # the same product predicted alone or within a batch gets the same answer
    alone = fashion_model.predict(mixed.subset([5]))[0]
    assert alone == preds[5]


def test_a_category_without_titles_scores_the_same_whatever_titles_are_scored_with_it(fashion):
    """The title naive Bayes gave a category no training title has the lowest score of the titles scored with it,
    less one: a title's scores, and through the re-ranker its prediction, depended on which other products were
    predicted together. Now that score is fixed at fit time."""
    from dataclasses import replace

    from tagkit.models.text_features import TextFeatures

    train, test = fashion
    untitled = train.categories[0]
    data = replace(train, texts=["" if c == untitled else t for c, t in zip(train.categories, train.texts,
                                                                                  strict=True)])
    model = CatalogueModel(seed=0, **FAST).fit(data)
    nb = model.nb_models["category"]
    assert nb.absent.sum() == 1
    x = model.text.transform(TextFeatures.prepare(test.texts)[0])
    together = nb.decision(x)
    assert np.array_equal(np.vstack([nb.decision(x[i]) for i in range(x.shape[0])]), together)
    assert (together[:, nb.absent] < together[:, ~nb.absent].min()).all()
    titles = test.without_images()
    assert [model.predict(titles.subset([i]))[0] for i in range(len(titles))] == model.predict(titles)


def test_image_only_training(fashion):
    train, test = fashion
    model = CatalogueModel(seed=0, **FAST).fit(train.without_text())
    assert model.report["inputs"] == {"text": False, "image": True}
    preds = model.predict(test.without_text())
    _check_shapes(model, train, preds)
    assert _accuracy(test, preds) >= 0.5
    # titles given at predict time are ignored by a model that never saw any, not an error
    assert len(model.predict(test)) == len(test)


def test_title_only_training(fashion):
    train, test = fashion
    model = CatalogueModel(seed=0, **FAST).fit(train.without_images())
    assert model.report["inputs"] == {"text": True, "image": False}
    assert set(model.report["validation"]) == {"both"}, "no image-only figures (and thresholds) without images"
    preds = model.predict(test)
    _check_shapes(model, train, preds)
    assert _accuracy(test, preds) >= 0.7
    # an explicit validation set is what calibrates and tunes thresholds
    titles = train.without_images()
    tuned = CatalogueModel(seed=0, **FAST).fit(titles.subset(np.arange(180)), titles.subset(np.arange(180, 240)))
    assert tuned.report["validation_products"] == 60 and tuned.report["products"] == 240
    assert _accuracy(test, tuned.predict(test)) >= 0.7


def test_deterministic_and_save_load(fashion, fashion_model, tmp_path):
    train, test = fashion
    again = CatalogueModel(seed=0, **FAST).fit(train)
    first = fashion_model.predict(test)
    assert again.predict(test) == first
    fashion_model.save(tmp_path / "m")
    assert (tmp_path / "m" / "manifest.json").exists()
    loaded = CatalogueModel.load(tmp_path / "m")
    assert loaded.predict(test) == first
    assert loaded.predict(test.without_text()) == fashion_model.predict(test.without_text())
    assert loaded.report == fashion_model.report


@pytest.mark.skipif(usable_cpus() < 2, reason="one core: BLAS has no second thread to add sums in another order")
def test_the_same_scores_whatever_the_blas_threads(fashion, fashion_model):
    """`predict` ran the models on one BLAS thread and `eval` (and a script) on every core: sums added up in
    another order moved scores in their sixth decimal, enough to cross a re-ranker's split (an audit found
    category scores 0.145 apart and other categories for the same products). Now the model decides its threads."""
    from threadpoolctl import threadpool_limits

    test = fashion[1]
    many = test.subset(np.tile(np.arange(len(test)), 10))  # matrices large enough for BLAS to use its threads
    for data in (many, many.without_text()):
        with threadpool_limits(limits=1, user_api="blas"):
            one = fashion_model.predict(data)
        with threadpool_limits(limits=usable_cpus(), user_api="blas"):
            every = fashion_model.predict(data)
        assert every == one


@pytest.mark.skipif(usable_cpus() < 2, reason="one core: BLAS has no second thread to add sums in another order")
def test_the_same_model_whatever_the_blas_threads(fashion, fashion_model):
    """A model trained on two cores differed from one trained on one (an audit: other re-ranker trees, tuned
    thresholds 0.24 vs 0.55, categories): the image models' matrix products added their sums up in another order."""
    from threadpoolctl import threadpool_limits

    train, test = fashion
    with threadpool_limits(limits=1, user_api="blas"):
        one = CatalogueModel(seed=0, **FAST).fit(train)
    with threadpool_limits(limits=usable_cpus(), user_api="blas"):
        every = CatalogueModel(seed=0, **FAST).fit(train)
    assert np.array_equal(every.ridge.weights, one.ridge.weights)
    assert np.array_equal(every.index.vectors, one.index.vectors)
    assert every.predict(test) == one.predict(test) == fashion_model.predict(test)


def test_colour_features(fashion, fashion_model, tmp_path):
    """The images' colour features get their own model, which alone names the colour of unseen products far
    better than the most common colour does; a model trained without them (as before colour features) still
    loads and predicts, and neither kind takes the other's features."""
    from tagkit.colour import DIM
    from tagkit.models.linear import ColourRidge

    train, test = fashion
    assert train.colour_dim == DIM and fashion_model.colour is not None
    colours = sorted({t.value for tags in train.tags for t in tags if t.name == "color"})

    def colour_of(data: Dataset) -> np.ndarray:
        return np.array([next((colours.index(t.value) for t in tags if t.name == "color" and t.value in colours), -1)
                         for tags in data.tags])

    y, truth = colour_of(train), colour_of(test)
    ridge = ColourRidge(landmarks=100, gamma=1.0, alpha=0.01)
    ridge.fit_oof(train.embeddings[:, -DIM:], np.eye(len(colours), dtype=np.float32)[y], np.arange(len(y)) % 2, 2)
    guess = ridge.decision(test.embeddings[:, -DIM:]).argmax(1)
    known = truth >= 0
    majority = np.bincount(y).argmax()
    assert (guess[known] == truth[known]).mean() >= (truth[known] == majority).mean() + 0.1

    def plain(data: Dataset) -> Dataset:  # the features of a model from before colour features
        return Dataset(data.ids, data.texts, data.embeddings[:, :-DIM].copy(), data.has_image, data.categories,
                       data.tags)

    old = CatalogueModel(seed=0, **FAST).fit(plain(train))
    assert old.colour is None and old.colour_dim == 0
    old.save(tmp_path / "old")
    pickled = joblib.load(tmp_path / "old" / "model.joblib")
    for name in ("colour", "colour_dim", "colour_landmarks", "colour_gamma", "colour_alpha"):
        del pickled.__dict__[name]  # as pickled by an older tagkit
    joblib.dump(pickled, tmp_path / "old" / "model.joblib")
    loaded = CatalogueModel.load(tmp_path / "old")
    assert loaded.colour is None and loaded.predict(plain(test)) == old.predict(plain(test))
    with pytest.raises(ValueError, match="of colour"):
        loaded.predict(test)
    with pytest.raises(ValueError, match="of colour"):
        fashion_model.predict(plain(test))


def test_thresholds_and_report(fashion_model):
    report = fashion_model.report
    assert set(report["thresholds"]) == {"color", "usage"}
    # one threshold per attribute and input condition, each tuned on that condition's validation rows
    for by_condition in report["thresholds"].values():
        assert set(by_condition) == {"both", "image", "text"}
        assert all(0.0 <= v <= 1.0 for v in by_condition.values())
    assert {"both", "image", "text"} <= set(report["validation"])
    # 240 products: many colours are seen fewer than 5 times; they are reported with their counts
    assert report["tags_too_rare"] and all(isinstance(c, int) and c < 5 for c in report["tags_too_rare"].values())
    assert all(name.startswith("color: ") or name.startswith("usage: ") for name in report["tags_too_rare"])


def test_accepted_tags_meet_their_condition_threshold(fashion_model, fashion):
    _, test = fashion
    thresholds = fashion_model.report["thresholds"]
    for condition, data in (("both", test), ("image", test.without_text()), ("text", test.without_images())):
        preds = fashion_model.predict(data)
        scores = [(tag, q) for p in preds for tag, q in p.tags]
        assert scores, f"no tags accepted under {condition}"
        assert all(q >= thresholds[tag.name][condition] - 1e-4 for tag, q in scores)
        # a rejected best value sits below its threshold
        for p in preds:
            named = {t.name for t, _ in p.tags}
            assert all(q < thresholds[t.name][condition] + 1e-4 for t, q in p.candidates if t.name not in named)


def test_multi_valued_attributes(torob):
    every = np.arange(len(torob))
    train, test = torob.subset(every[every % 5 != 0]), torob.subset(every[every % 5 == 0])
    model = CatalogueModel(seed=0, **FAST).fit(train)
    report = model.report
    assert report["inputs"] == {"text": True, "image": False}
    assert report["multi_valued_attributes"], "some Torob attributes have several values on a product"
    assert "tags" in report["thresholds"] and report["classes"]["tags"] > 0
    rare = report["tags_too_rare"]
    assert rare and min(rare.values()) >= 1
    preds = model.predict(test)
    _check_shapes(model, train, preds)
    accepted = [[t for t, _ in p.tags] for p in preds]
    assert tag_metrics(test.tags, accepted)["micro_f1"] >= 0.25
    multi = set(report["multi_valued_attributes"])
    assert any(Counter(t.name for t in tags if t.name in multi).most_common(1)[0][1] > 1
               for tags in accepted if any(t.name in multi for t in tags))
    assert _accuracy(test, preds) >= 0.5


def test_category_metrics():
    a, b, c = ("A", "x"), ("A", "y"), ("B", "z")
    m = category_metrics([a, a, b, c, ()], [[a, b], [b, a], [b], [a, b, c], [a]])
    assert m["n"] == 4
    assert m["accuracy"] == 0.5 and m["top3"] == 1.0
    rows = {r["category"]: r for r in m["per_category"]}
    assert rows["A > x"]["recall"] == 0.5 and rows["A > y"]["precision"] == 0.5
    assert rows["B > z"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert m["confused"][0]["count"] == 1


def test_tag_metrics():
    r, g, s = Tag("color", "Red"), Tag("color", "Green"), Tag("", "sale")
    m = tag_metrics([[r, s], [g], [], [r]], [[r], [g, s], [r], []])
    assert m["n"] == 3
    assert m["micro_precision"] == pytest.approx(2 / 3) and m["micro_recall"] == pytest.approx(2 / 4)
    assert m["micro_f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["hamming_score"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["exact_match"] == 0.0
    assert tag_metrics([[r]], [[r]])["exact_match"] == 1.0


def test_evaluate_uses_alternatives(fashion, fashion_model):
    _, test = fashion
    result = evaluate(test, fashion_model.predict(test))
    assert result["category"]["top3"] >= result["category"]["accuracy"]
    assert set(result["tags_by_attribute"]) == {"color", "usage"}


@pytest.mark.parametrize("width", [50, 257, 30_921])
def test_top_k_matches_a_full_sort(width):
    """The bucketed top-k (wide rows, a last bucket shorter than the others) equals a stable full sort, ties by
    position."""
    from tagkit.models.knn import top_k

    rng = np.random.default_rng(width)
    s = rng.integers(0, 40, size=(64, width)).astype(np.float32)  # many ties
    idx, vals = top_k(s, 10)
    order = np.lexsort((np.broadcast_to(np.arange(width), s.shape), -s), axis=1)[:, :10]
    assert idx.tolist() == order.tolist()
    assert vals.tolist() == np.take_along_axis(s, order, 1).tolist()


def test_predict_uses_the_image_features_the_model_was_trained_on(tmp_path):
    """A model version trained before colour features were part of an image's features is given an embedder
    without them; one trained on features this tagkit cannot make is refused with a clear message."""
    from tagkit.predicting import ModelMismatch, embedder_for
    from tagkit.versions import ModelVersion

    current, plain = ImageEmbedder("int8"), ImageEmbedder("int8", colour=False)
    for embedder in (current, plain):
        found = ModelVersion("v", tmp_path, {"image_model": embedder.model_id, "image_variant": "int8"})
        assert embedder_for(found).model_id == embedder.model_id
        assert embedder_for(found).dim == embedder.dim
    other = ModelVersion("v", tmp_path, {"image_model": "efficientnet-lite0-int8-letterbox224@0123456789ab"})
    with pytest.raises(ModelMismatch, match="train a new model"):
        embedder_for(other)
    # Trained on the INT8 features of a tagkit before exact sums (wrong on x86 CPUs without VNNI): retrain.
    for embedder in (current, plain):
        older = ModelVersion("v", tmp_path, {"image_model": embedder.model_id.replace("+exact", ""),
                                             "image_variant": "int8"})
        with pytest.raises(ModelMismatch, match="older tagkit, whose INT8 sums were wrong on x86 CPUs without VNNI"):
            embedder_for(older)


def test_word_pairs_mark_the_start_and_end_of_a_title(torob):
    """The first word of a Persian title (usually the product type) is a feature of its own, `<s> word`; the
    plain analyzer (models saved before, the bench baseline) has no markers."""
    from tagkit.models.text_features import TextFeatures

    norm, has_text = TextFeatures.prepare(torob.texts)
    titles = [t for t, h in zip(norm, has_text, strict=True) if h]
    bounded = TextFeatures().fit(titles)
    firsts = {t.split()[0] for t in titles}
    assert all(f"<s> {w}" in bounded.words.vocabulary for w in firsts)
    assert f"{titles[0].split()[-1]} </s>" in bounded.words.vocabulary
    plain = TextFeatures(boundaries=False).fit(titles)
    assert not any(term.startswith("<s>") for term in plain.words.vocabulary)
    assert bounded.transform(titles[:5]).shape == (5, bounded.n_features)


def _micro_f1(attributes, thresholds) -> float:
    made = [s >= t for (s, _, _), t in zip(attributes, thresholds, strict=True)]
    tp = sum(int((m & right).sum()) for m, (_, right, _) in zip(made, attributes, strict=True))
    predicted = sum(int(m.sum()) for m in made)
    positives = sum(gold for *_, gold in attributes)
    return 2 * tp / (predicted + positives)


def test_thresholds_tuned_together_for_micro_f1():
    """A hard attribute's weak guesses, worth keeping for its own F1, cost micro-F1 over all tags: tuned
    together, its threshold goes up and micro-F1 with it; never below the attributes' own thresholds."""
    from tagkit.models.catalogue import _best_threshold, _micro_thresholds

    rng = np.random.default_rng(0)
    n = 2_000
    easy_score = rng.uniform(0.6, 1.0, n)
    easy = (easy_score, rng.uniform(size=n) < easy_score, n)  # right about as often as it is sure
    hard_score = rng.uniform(0.0, 0.7, n)
    hard = (hard_score, rng.uniform(size=n) < hard_score, n)
    attributes = [easy, hard]
    own = [_best_threshold(*a) for a in attributes]
    joint = _micro_thresholds(attributes)
    assert joint[1] > own[1] + 0.05
    assert _micro_f1(attributes, joint) > _micro_f1(attributes, own) + 0.005


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 2**16)), min_size=1, max_size=4))
def test_thresholds_tuned_together_never_lose_micro_f1(shapes):
    from tagkit.models.catalogue import _best_threshold, _micro_thresholds

    attributes = []
    for n, seed in shapes:
        rng = np.random.default_rng(seed)
        score = rng.uniform(size=n).astype(np.float32)
        right = rng.uniform(size=n) < score
        attributes.append((score, right, int(right.sum() + rng.integers(0, n))))
    if not sum(gold for *_, gold in attributes):
        return
    own = [_best_threshold(*a) for a in attributes]
    joint = _micro_thresholds(attributes)
    assert all(0.0 <= t <= 1.0 for t in joint)
    assert _micro_f1(attributes, joint) >= _micro_f1(attributes, own) - 1e-9


@pytest.mark.parametrize("analyzer", ["bounded_word_ngrams", "char_wb"])
def test_tfidf_transform_equals_scikit_learns(torob, fashion, analyzer):
    """The TF-IDF a model keeps (and predicts with, without importing scikit-learn) gives scikit-learn's
    numbers to the bit, on Persian and English titles; a model pickled with scikit-learn's vectorisers
    loads into it."""
    import pickle

    from sklearn.feature_extraction.text import TfidfVectorizer

    from tagkit.models.text_features import TextFeatures, Tfidf, bounded_word_ngrams

    how = {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2} if analyzer == "char_wb" else \
        {"analyzer": bounded_word_ngrams}
    for titles in (torob.texts, fashion[0].texts + fashion[1].texts):
        norm, _ = TextFeatures.prepare(titles)
        train, test = [n for n in norm[:-100] if n], [*norm[-100:], "", "  ", "x"]
        vectoriser = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, **how).fit(train)
        expected, got = vectoriser.transform(test), Tfidf.from_vectoriser(vectoriser).transform(test)
        expected.sort_indices()
        assert got.shape == expected.shape and got.nnz == expected.nnz > 0
        assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
        assert np.array_equal(got.data, expected.data)

    old = TextFeatures().fit(norm[:-100])
    old.words = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, analyzer=bounded_word_ngrams).fit(train)
    old.chars = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, analyzer="char_wb", ngram_range=(2, 5)).fit(train)
    loaded = pickle.loads(pickle.dumps(old))
    assert isinstance(loaded.words, Tfidf) and isinstance(loaded.chars, Tfidf)
    both = sp_hstack([old.words.transform(test), old.chars.transform(test)])
    assert np.array_equal(loaded.transform(test).toarray(), (both * np.float32(np.sqrt(0.5))).toarray())


def test_a_saved_model_predicts_without_importing_scikit_learn_or_lightgbm(fashion, fashion_model, tmp_path):
    """LightGBM's library is called directly (`SavedBooster`): the same scores as `lightgbm.Booster`, and a
    fresh process loads and predicts without importing scikit-learn, LightGBM or scipy.stats (0.8 s)."""
    import subprocess
    import sys

    import lightgbm as lgb

    from tagkit.models.booster import SavedBooster

    fashion_model.save(tmp_path / "model")
    test = fashion[1]
    rng = np.random.default_rng(0)
    for name, file in json.loads((tmp_path / "model" / "manifest.json").read_text("utf-8"))["rerankers"].items():
        saved, reference = CatalogueModel.load(tmp_path / "model").rerankers[name].booster, \
            lgb.Booster(model_file=str(tmp_path / "model" / file))
        assert isinstance(saved, SavedBooster)
        x = rng.normal(size=(500, reference.num_feature()))
        rounds = fashion_model.rerankers[name].best_rounds
        assert np.array_equal(saved.predict(x, num_iteration=rounds),
                              reference.predict(x, num_iteration=rounds, raw_score=True))
    joblib.dump(test, tmp_path / "test.joblib")
    script = (
        "import sys, joblib; from tagkit.models import CatalogueModel;"
        f"m = CatalogueModel.load({str(tmp_path / 'model')!r}); d = joblib.load({str(tmp_path / 'test.joblib')!r});"
        "p = m.predict(d); print(sum(x.category is not None for x in p));"
        "print(sorted(n for n in ('sklearn', 'lightgbm', 'scipy.stats') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == str(len(test)) and out[1] == "[]"
    expected = fashion_model.predict(test)
    assert [p.category for p in CatalogueModel.load(tmp_path / "model").predict(test)] == \
        [p.category for p in expected]


def test_category_scores_leave_room_for_a_class_the_candidates_miss(torob):
    """When the true category is often not among the re-ranker's candidates (Torob product types, two candidates
    each), the scores say so (an outside share fitted on the validation rows) instead of spreading all the
    probability over the candidates: the mean top score is close to the share of products whose best type is
    right. (Fitted on the rows whose truth is a candidate only, every score here was 1.0 for 86 % right.)"""
    every = np.arange(len(torob))
    train, test = torob.subset(every[every % 4 != 0]), torob.subset(every[every % 4 == 0])
    model = CatalogueModel(seed=0, **{**FAST, "n_candidates": 2}).fit(train)
    assert model.report["candidate_recall"]["category"]["text"] < 0.95  # the case this is about
    assert model.report["outside_logits"]["category"][2] is not None  # (text only)
    preds = model.predict(test)
    mean_score = float(np.mean([p.category_score for p in preds]))
    assert abs(mean_score - _accuracy(test, preds)) < 0.05, (mean_score, _accuracy(test, preds))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the workers' signal masks in /proc (Linux)")
def test_the_text_fit_workers_start_with_ctrl_c_blocked():
    """Ctrl-C reaches every process of a terminal's command: a worker it reached while starting printed its own
    traceback under `tagkit train`'s message (in 2 of 3 tries that sent it just as the workers appeared). They now
    start with SIGINT blocked; tagkit itself keeps it."""
    import os
    import signal

    from tagkit.models.catalogue import start_workers, stop_workers

    def workers() -> list[int]:
        """This process's loky workers: 1 for each with SIGINT blocked."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                stat, cmdline = (entry / "stat").read_text(), (entry / "cmdline").read_text()
                status = (entry / "status").read_text()
            except OSError:  # not a process, or gone
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and "popen_loky_posix" in cmdline:
                blocked = next(line for line in status.splitlines() if line.startswith("SigBlk"))
                found.append(int(blocked.split()[1], 16) >> (signal.SIGINT - 1) & 1)
        return found

    start_workers(2)
    assert workers() == [1, 1]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    stop_workers()  # what the fit does once its text models are fitted: a script keeps no idle worker
    assert workers() == []


@pytest.mark.parametrize(("policy", "shown"), [(None, "GOMP_SPINCOUNT = '0'"),
                                               ("ACTIVE", "OMP_WAIT_POLICY = 'ACTIVE'")])
def test_openmp_threads_wait_asleep_unless_told_otherwise(policy: str | None, shown: str):
    """LightGBM's OpenMP threads spun on a core while waiting for work (libgomp's default): two `train`s at once on
    2 cores took 99 s each instead of 37. Importing tagkit makes them wait asleep; a policy the user set stays."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= {"OMP_DISPLAY_ENV": "VERBOSE"} | ({"OMP_WAIT_POLICY": policy} if policy else {})
    done = subprocess.run([sys.executable, "-c", "import tagkit, lightgbm"], env=env, capture_output=True, text=True,
                          check=True)
    assert shown in done.stderr, done.stderr
