"""`tagkit eval`: how good a model is on labelled products it was not trained on."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagkit.config import Mapping
from tagkit.dataset import Dataset, products_dataset
from tagkit.ingest import ImportReport, import_products
from tagkit.predicting import check_top_k, embedder_for, last_per_id, load_model
from tagkit.product import Problem, Product, Tag, format_category
from tagkit.store import Store
from tagkit.taxonomy import stored_taxonomy
from tagkit.text import spelling_key
from tagkit.training import NothingToLearn, keep_attributes

if TYPE_CHECKING:
    from tagkit.models import Prediction


class NothingToScore(NothingToLearn):
    """`evaluate` found no product with a category or tags in its source. `result`: the scores as they would be
    (`products` 0, every score None) with `import` and `problems`, what reading the source did."""

    def __init__(self, message: str, result: dict[str, Any], import_report: ImportReport | None = None) -> None:
        super().__init__(message, import_report)
        self.result = result


def evaluate(
    store: Store,
    source: str | Path,
    *,
    version: str | None = None,
    mapping: Mapping | None = None,
    products_file: str | Path | None = None,
    top_k: int = 3,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
) -> dict[str, Any]:
    """Predict for the labelled products of `source` (a products file, or a folder of images with `products_file`
    giving their titles and labels) and score the predictions against their labels.

    The result has `category` (accuracy, top-k, macro-F1, per-category table, most confused pairs), `tags`
    (micro/macro P/R/F1, per-tag table, Hamming score, exact match), `tags_by_attribute`, and `products`, `model`,
    `seen_in_training` (how many evaluated products the model was trained on: an honest score needs 0),
    `same_picture_in_training` (how many others have the picture of a product it was trained on),
    `decided_otherwise` (how many have review decisions that label them otherwise than the file, which is what is
    scored; `train` learns the decisions), `no_input`
    (how many had neither a title nor a readable image: nothing was predicted, so they count wrong), `import` and
    `problems` (what reading `source` did: `ImportReport.counts()`, its first problems), and `attributes` when the
    model was trained on some attributes only (`train: attributes:`): then only their tags are scored. An id given
    twice is scored once, as its last row says (however far apart the rows are; a last row without labels leaves the
    id unscored). `category` also has `not_learnt`: how many true categories are none the model can predict (it
    never learnt them, or the taxonomy in force does not have them), with the commonest in `not_learnt_examples`;
    they count wrong; `tags` has the same for the true tags (none when the model has a title extractor, which reads
    values it never saw). A score over no products (`n` 0: no true category, or no true tag) is None, null in JSON,
    not 0. The products scored that the model was not trained on become test products (`Store.set_held_out`),
    which `train` without a source leaves out; scoring an older `version`, not those the newest version learnt from.
    `top_k` is 1 to 20, or ValueError. With no product to score (none has a category or tags, or nothing could be
    read) it raises `NothingToScore` (a `NothingToLearn`), whose `result` is the above and `import_report` what
    reading `source` did.
    """
    from tagkit.models.metrics import evaluate as score

    top_k = check_top_k(top_k)
    started = time.monotonic()
    found, model = load_model(store, version)
    embedder = embedder_for(found)
    training_ids = _training_ids(found.path)
    # a product the newest version learnt from stays one to learn from when an older version is scored on it
    learnt = training_ids | (_newest_training_ids(store) if version is not None else set())
    pictures = _training_pictures(store, training_ids)
    same_picture: set[str] = set()
    as_read: dict[str, Product] = {}  # each scored product with the file's labels
    scored: dict[str, tuple[tuple[str, ...], tuple, Prediction]] = {}  # a later row of an id replaces it
    no_input: set[str] = set()
    attributes = found.manifest.get("params", {}).get("attributes")  # train.attributes: score only these
    taxonomy = stored_taxonomy(store) if attributes else None

    def on_chunk(chunk: list[Product]) -> None:
        products = []
        rows = last_per_id(chunk)
        if attributes:
            rows = keep_attributes(rows, attributes, taxonomy)[0]
        for product in rows:
            scored.pop(product.id, None)  # an earlier row of the id, in any chunk: this row says
            no_input.discard(product.id)
            if product.category or product.tags:
                products.append(product)
        if not products:
            return
        data = products_dataset(store, products, embedder)
        by_id = {p.id: p for p in products}
        for i, prediction in enumerate(model.predict(data, top_k=top_k)):
            product = by_id[data.ids[i]]
            if product.keeps:  # not scored on the attributes its file does not give
                prediction = replace(prediction, tags=[(t, s) for t, s in prediction.tags
                                                       if product.gives_tags_of(t.name)])
            scored[data.ids[i]] = (data.categories[i], data.tags[i], prediction)
            if not (data.has_text[i] or data.has_image[i]):
                no_input.add(data.ids[i])
        same_picture.update(p.id for p in products if p.id not in training_ids and p.image_hash in pictures)
        as_read.update((p.id, p) for p in products)
        store.set_held_out((p.id for p in products if p.id not in learnt), True)

    imported = import_products(store, source, mapping=mapping, products_file=products_file, embedder=embedder,
                               on_problem=on_problem, on_progress=on_progress, on_chunk=on_chunk, run_id=run_id,
                               training=False)
    ids = list(scored)
    categories, tags, predictions = ([entry[k] for entry in scored.values()] for k in range(3))
    categories, tags, predictions = _one_spelling(categories, tags, predictions)
    truth = Dataset(ids, [""] * len(ids), np.zeros((len(ids), 0), np.float32), np.zeros(len(ids), bool),
                    categories, tags)
    result = score(truth, predictions, top_k=top_k)
    _undefined_as_none(result, top_k)
    result["category"].update({"k": top_k, "top_k": result["category"][f"top{top_k}"]})  # one key whatever k is
    result["category"].update(_not_learnt(categories, model.category_paths()))
    result["tags"].update(_tags_not_learnt(tags, model.tag_values()))
    result.update({
        "model": found.id,
        "products": len(ids),
        "seen_in_training": sum(1 for i in ids if i in training_ids),
        "same_picture_in_training": sum(1 for i in ids if i in same_picture),
        "decided_otherwise": _decided_otherwise(store, [as_read[i] for i in ids]),
        "no_input": len(no_input),
        **({"attributes": attributes} if attributes else {}),
        "seconds": round(time.monotonic() - started, 3),
        "import": imported.counts(),
        "problems": [asdict(problem) for problem in imported.problems],
    })
    if not ids:
        raise NothingToScore(f"no product with a category or tags in {source}: nothing to score", result, imported)
    return result


def _decided_otherwise(store: Store, products: list[Product]) -> int:
    """How many of the products (labelled as a file gives them) review decisions label otherwise."""
    from tagkit.feedback import apply_feedback, feedback_rows
    from tagkit.queue import attribute_arity

    by_id = {p.id: p for p in products}
    rows = [row for row in feedback_rows(store) if row["product_id"] in by_id]
    if not rows:
        return 0
    taxonomy = stored_taxonomy(store)
    decided = apply_feedback([by_id[i] for i in dict.fromkeys(r["product_id"] for r in rows)], rows, taxonomy,
                             attribute_arity(store, taxonomy))

    def labels(product: Product) -> tuple[list[str], set[tuple[str, str]]]:
        return ([spelling_key(level) for level in product.category],
                {(spelling_key(t.name), spelling_key(t.value)) for t in product.tags})

    return sum(1 for product in decided if labels(product) != labels(by_id[product.id]))


def _training_ids(folder: Path) -> set[str]:
    """The ids of the products a model version (its folder) learnt from."""
    path = folder / "training_ids.txt"
    return set(path.read_text("utf-8").split("\n")) if path.exists() else set()


def _newest_training_ids(store: Store) -> set[str]:
    """The ids the newest model version learnt from (none when it has no folder here)."""
    from tagkit.versions import ModelNotFound, find_version

    try:
        return _training_ids(find_version(store, None).path)
    except ModelNotFound:
        return set()


def _training_pictures(store: Store, training_ids: set[str]) -> set[str]:
    """The image hashes of the products a model learnt from."""
    return {row[0] for row in store.select_in("select image_hash from products where image_hash is not null and id "
                                              "in ({marks})", [], training_ids)}


def _one_spelling(categories: list[tuple[str, ...]], labels: list[tuple[Tag, ...]], predictions: list[Prediction]
                  ) -> tuple[list[tuple[str, ...]], list[tuple[Tag, ...]], list[Prediction]]:
    """Labels and predictions with each category and tag written one way: the labels' most common spelling of it
    (`tagkit.vocabulary.Spellings`), so that a prediction is scored as the label it is, and the per-category and
    per-tag tables have one row per label. A taxonomy makes both canonical already; without one, the model writes
    a label as its training labels mostly did (`Puma`, `40 تا 45`) and a test label may not (`puma`, `۴۰ تا ۴۵`)."""
    from tagkit.vocabulary import Spellings

    spelt = Spellings(categories, (t for own in labels for t in own))
    predictions = [replace(p, category=spelt.path(p.category) if p.category else p.category,
                           alternatives=[(spelt.path(path), score) for path, score in p.alternatives],
                           tags=[(spelt.tag(t), score) for t, score in p.tags]) for p in predictions]
    return [spelt.path(c) for c in categories], [spelt.tags(own) for own in labels], predictions


def _not_learnt(categories: list[tuple[str, ...]], learnt: set[tuple[str, ...]], examples: int = 5
                ) -> dict[str, Any]:
    """How many of the true `categories` (spelt as `_one_spelling` spells them) are none of the `learnt` paths, by
    spelling key, and the commonest of them."""
    from tagkit.vocabulary import Spellings

    known = {Spellings.path_key(path) for path in learnt}
    missing = Counter(path for path in categories if path and Spellings.path_key(path) not in known)
    return {"not_learnt": sum(missing.values()),
            "not_learnt_examples": [{"category": format_category(path), "count": count}
                                    for path, count in missing.most_common(examples)]}


def _tags_not_learnt(labels: list[tuple[Tag, ...]], learnt: set[Tag] | None, examples: int = 5) -> dict[str, Any]:
    """How many of the true tags are none the model can predict (`learnt`, by spelling key; None: it can read any
    value), and the commonest of them."""
    if learnt is None:
        return {"not_learnt": 0, "not_learnt_examples": []}
    key = lambda tag: (spelling_key(tag.name), spelling_key(tag.value))  # noqa: E731
    known = {key(tag) for tag in learnt}
    missing = Counter(tag for own in labels for tag in own if key(tag) not in known)
    return {"not_learnt": missing.total(),
            "not_learnt_examples": [{"tag": str(tag), "count": count} for tag, count in missing.most_common(examples)]}


def _undefined_as_none(result: dict[str, Any], top_k: int) -> None:
    """Set the scores of a part with nothing to score (no product with a true category, or with a true tag) to
    None: 0.0 would read as a model that is always wrong."""
    if not result["category"]["n"]:
        result["category"].update(dict.fromkeys(("accuracy", f"top{top_k}", "macro_f1")))
    if not result["tags"]["n"]:
        result["tags"].update(dict.fromkeys(("micro_precision", "micro_recall", "micro_f1", "macro_precision",
                                             "macro_recall", "macro_f1", "hamming_score", "exact_match")))
