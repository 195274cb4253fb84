"""`tagkit predict`: categories and tags for new products, stored in the database and streamed out."""

from __future__ import annotations

import hashlib
import json
import operator
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagkit.config import Mapping
from tagkit.cpus import one_blas_thread
from tagkit.dataset import Dataset, product_text, products_dataset
from tagkit.image import ImageEmbedder
from tagkit.ingest import ImportReport, import_products
from tagkit.product import Problem, Product, format_category
from tagkit.store import Store
from tagkit.taxonomy import stored_taxonomy, taxonomy_fingerprint
from tagkit.versions import ModelDamaged, ModelVersion, find_version

if TYPE_CHECKING:
    from tagkit.models import Prediction
    from tagkit.tagger import Tagger
    from tagkit.taxonomy import Taxonomy


class ModelMismatch(ValueError):
    """The model was trained on features of another image model than the one installed."""


@dataclass(frozen=True)
class PredictedProduct:
    """One product's prediction as stored and exported."""

    id: str
    title: str
    image: str | None
    model: str
    category: str | None
    category_score: float | None  # None when there is no category
    alternatives: list[tuple[str, float]]
    tags: list[tuple[str, float]]
    candidates: list[tuple[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def empty(self) -> bool:
        """Nothing was predicted: no category, tag or candidate (the product had nothing the model reads)."""
        return not self.category and not self.tags and not self.candidates


@dataclass
class PredictReport:
    """What `predict` did: `products` (one per id and chunk) = `predicted` now + `unchanged` (the stored
    prediction of this model was made from the same title, description and image bytes: reused).
    `empty` of them got no category, tag or candidate: the `no_input` ones because they had neither a title (or
    description) nor a readable image, the others because the model reads only what they lack (a model trained
    on titles only, say) or none of its answers is in the taxonomy."""

    model: str
    products: int = 0
    predicted: int = 0
    unchanged: int = 0
    no_input: int = 0
    empty: int = 0
    outside_tree: int = 0  # with tags, but no category: none of the model's paths is in the taxonomy's tree
    seconds: float = 0.0
    import_report: ImportReport | None = None

    def counts(self) -> dict[str, int | float | str]:
        return {"model": self.model, "products": self.products, "predicted": self.predicted,
                "unchanged": self.unchanged, "no_input": self.no_input, "empty": self.empty,
                "outside_tree": self.outside_tree, "seconds": self.seconds}


def load_model(store: Store, version: str | None = None) -> tuple[ModelVersion, Tagger]:
    """The newest model version (or the one named) and its loaded model (with its attribute extractor, if any),
    held to the database's taxonomy."""
    found = find_version(store, version)
    return found, _load(found, stored_taxonomy(store))


def _load(found: ModelVersion, taxonomy: Taxonomy | None) -> Tagger:
    """The version's model; ModelDamaged when its files cannot be read."""
    from tagkit.tagger import Tagger

    try:
        return Tagger.load(found.path, taxonomy)
    except Exception as error:  # unpickling, JSON and LightGBM errors of a file cut short or overwritten
        raise ModelDamaged(found.id, found.path, error) from error


def embedder_for(found: ModelVersion) -> ImageEmbedder:
    """The image embedder the model was trained with; an error if the installed one differs."""
    from tagkit.image import EXACT, ImageEmbedder

    expected = found.manifest.get("image_model")
    # Models trained before colour features were part of an image's features keep their embeddings alone.
    with_colour = not expected or "+colour" in expected
    embedder = ImageEmbedder(variant=found.manifest.get("image_variant", "int8"), colour=with_colour)
    if expected and embedder.model_id.replace(EXACT, "", 1) == expected != embedder.model_id:
        raise ModelMismatch(f"model {found.id} was trained on image features of an older tagkit, whose INT8 sums "
                            "were wrong on x86 CPUs without VNNI instructions; this tagkit computes them exactly on "
                            "every CPU: train a new model (`tagkit train FILE` embeds the images again)")
    if expected and embedder.model_id != expected:
        raise ModelMismatch(f"model {found.id} was trained on {expected} image features, but this tagkit has "
                            f"{embedder.model_id}: train a new model (`tagkit train`)")
    return embedder


def to_record(product: Product, prediction: Prediction, model: str) -> PredictedProduct:
    return PredictedProduct(
        id=product.id,
        title=product.title,
        image=product.image,
        model=model,
        category=format_category(prediction.category) if prediction.category else None,
        category_score=round(float(prediction.category_score), 4) if prediction.category else None,
        alternatives=[(format_category(path), round(float(score), 4)) for path, score in prediction.alternatives],
        tags=[(str(tag), round(float(score), 4)) for tag, score in prediction.tags],
        candidates=[(str(tag), round(float(score), 4)) for tag, score in prediction.candidates],
    )


def predict_records(model: Tagger, data: Dataset, products: list[Product], model_id: str,
                    top_k: int) -> list[PredictedProduct]:
    """The predictions of `model` (version `model_id`) for `products`, whose inputs `data` holds, as records."""
    predictions = model.predict(data, top_k=top_k)
    return [to_record(p, pred, model_id) for p, pred in zip(products, predictions, strict=True)]


# Raised when the rules that turn a model's scores into a prediction change, so that stored predictions are made
# again (2: a product with neither a title nor an image gets nothing, not the training prior; 3: with a taxonomy,
# all of the model's candidate paths are made canonical before the best are taken, whatever the top-k).
PREDICTION_RULES = 3


TOP_K_MAX = 20  # the command line's --top-k takes 1 to 20 too


def check_top_k(top_k: object) -> int:
    """`top_k` as an int, or ValueError unless it is a whole number from 1 to TOP_K_MAX."""
    if not isinstance(top_k, bool):
        try:
            k = operator.index(top_k)  # int, numpy integers
        except TypeError:
            pass
        else:
            if 1 <= k <= TOP_K_MAX:
                return k
    raise ValueError(f"top_k must be a whole number from 1 to {TOP_K_MAX}, not {top_k!r}")


def input_key(product: Product, top_k: int, taxonomy: str = "") -> str:
    """A fingerprint of what a prediction is made from: the texts, the image bytes (hash), top-k, the
    taxonomy it is held to (`taxonomy_fingerprint`) and `PREDICTION_RULES`."""
    made_from = [product.title, product.description, product.image_hash, top_k, *([taxonomy] if taxonomy else []),
                 PREDICTION_RULES]
    text = json.dumps(made_from, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_STORED = ("product_id", "model_id", "category", "category_score", "alternatives", "tags", "tag_candidates",
           "input_key")


def stored_predictions(store: Store, model_id: str, keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The stored prediction rows of `model_id` for the products in `keys` (id -> input key) whose input
    key matches: those products need no new prediction."""
    sql = f"select {', '.join(_STORED)} from predictions where model_id = ? and product_id in ({{marks}})"
    rows = (dict(zip(_STORED, row, strict=True)) for row in store.select_in(sql, [model_id], keys))
    return {row["product_id"]: row for row in rows if row["input_key"] == keys[row["product_id"]]}


def stored_record(row: dict[str, Any], title: str, image: str | None) -> PredictedProduct:
    """A row of the `predictions` table (with the product's title and image) as a PredictedProduct."""
    def pairs(text: str | None) -> list[tuple[str, float]]:
        return [(str(value), float(score)) for value, score in json.loads(text or "[]")]

    return PredictedProduct(
        id=row["product_id"], title=title, image=image, model=row["model_id"], category=row["category"],
        category_score=float(row["category_score"] or 0.0) if row["category"] else None,
        alternatives=pairs(row["alternatives"]),
        tags=pairs(row["tags"]), candidates=pairs(row.get("tag_candidates")))


def _stamp(store: Store, ids: list[str]) -> str:
    """Now, to the microsecond (the latest of two versions' predictions made in one second is the one made last),
    and later than every stored prediction of these products, so that the one made last is the latest also when
    the clock was put back (a corrected clock, a restored snapshot)."""
    stamp = datetime.now(UTC)
    sql = "select max(created_at) from predictions where product_id in ({marks})"
    newest = max((row[0] for row in store.select_in(sql, [], ids) if row[0]), default=None)
    if newest is not None:
        last = datetime.fromisoformat(newest)
        if stamp <= last:
            stamp = last + timedelta(microseconds=1)
    return stamp.isoformat()


def store_predictions(store: Store, records: list[PredictedProduct], keys: dict[str, str] | None = None,
                      taxonomy: str = "") -> None:
    """Upsert predictions (one row per product and model version), with each product's input key and the
    fingerprint of the taxonomy they are held to (`taxonomy_fingerprint`), dated by `_stamp`."""
    with store.transaction():
        stamp = _stamp(store, [r.id for r in records])
        rows = [{
            "product_id": r.id,
            "model_id": r.model,
            "created_at": stamp,
            "category": r.category,
            "category_score": r.category_score,
            "alternatives": json.dumps(r.alternatives, ensure_ascii=False),
            "tags": json.dumps(r.tags, ensure_ascii=False),
            "tag_candidates": json.dumps(r.candidates, ensure_ascii=False),
            "input_key": (keys or {}).get(r.id),
            "taxonomy": taxonomy,
        } for r in records]
        store.db.table("predictions").upsert_all(rows, pk=("product_id", "model_id"), alter=True)


def restamp_predictions(store: Store, model_id: str, ids: list[str], taxonomy: str = "") -> None:
    """Date the stored predictions of `model_id` for `ids` now: predicting them again would give the same (their
    input, the `taxonomy` fingerprint included, is unchanged), and they are now those products' latest predictions
    (what `review` shows)."""
    with store.transaction():
        sql = "update predictions set created_at = ?, taxonomy = ? where model_id = ? and product_id in ({marks})"
        list(store.select_in(sql, [_stamp(store, ids), taxonomy, model_id], ids))  # runs the update, chunk by chunk


def predict(
    store: Store,
    source: str | Path,
    *,
    version: str | None = None,
    mapping: Mapping | None = None,
    products_file: str | Path | None = None,
    top_k: int = 3,
    on_prediction: Callable[[PredictedProduct], None] | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
    force: bool = False,
) -> PredictReport:
    """Import `source` (products file or image folder), predict each chunk as it is stored, and store
    the predictions (one row per product and model version). Memory does not grow with the input.

    Incremental: a product whose stored prediction from this model was made from the same input (see
    `input_key`) is not predicted again; `on_prediction` gets the stored one, so an export is complete
    either way. `force` predicts every product again (and re-imports, see `import_products`). Killed at
    any point, the predictions of whole chunks are kept; the next run does the rest. A product already
    stored keeps its labels when its new row has none. `top_k` (alternatives per product) is 1 to 20, or
    ValueError.
    """
    top_k = check_top_k(top_k)
    started = time.monotonic()
    found = find_version(store, version)
    embedder = embedder_for(found)
    taxonomy = stored_taxonomy(store)
    fingerprint = taxonomy_fingerprint(taxonomy)
    report = PredictReport(model=found.id)
    # One worker thread loads the model (imports included) while the first images are embedded, then
    # predicts each chunk while the next one is read and embedded; this thread stores the results.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagkit-predict")
    loading = worker.submit(_load, found, taxonomy)
    pending: list[tuple[list[Product], dict[str, str], dict[str, dict[str, Any]], Future | None]] = []

    def finish() -> None:
        products, keys, stored, future = pending.pop()
        made = {r.id: r for r in future.result()} if future else {}
        if made:
            store_predictions(store, list(made.values()), keys, fingerprint)
        if stored:
            restamp_predictions(store, found.id, list(stored), fingerprint)
        report.products += len(products)
        report.predicted += len(made)
        report.unchanged += len(stored)
        records = [made[p.id] if p.id in made else stored_record(stored[p.id], p.title, p.image) for p in products]
        report.empty += sum(1 for record in records if record.empty)
        tagger = loading.result()
        if tagger.learns_categories and tagger.taxonomy is not None and tagger.taxonomy.categories:
            # the tree left them none of the model's paths
            report.outside_tree += sum(1 for record in records if not record.empty and not record.category)
        if on_prediction:
            for record in records:
                on_prediction(record)

    def on_chunk(chunk: list[Product]) -> None:
        products = last_per_id(chunk)
        keys = {p.id: input_key(p, top_k, fingerprint) for p in products}
        stored = {} if force else stored_predictions(store, found.id, keys)
        todo = [p for p in products if p.id not in stored]
        data = products_dataset(store, todo, embedder)
        report.no_input += int((~(data.has_text | data.has_image)).sum()) + _without_input(
            store, embedder, [p for p in products if p.id in stored])
        future = worker.submit(lambda: predict_records(loading.result(), data, todo, found.id, top_k)) if todo else None
        if pending:
            finish()
        pending.append((products, keys, stored, future))

    # The embedding threads keep every core busy: the numpy products they do (colour features) run on one BLAS
    # thread too, or BLAS's own threads would only wait for a core, spinning while they wait.
    try:
        with one_blas_thread():
            report.import_report = import_products(
                store, source, mapping=mapping, products_file=products_file, embedder=embedder,
                on_problem=on_problem, on_progress=on_progress, on_chunk=on_chunk, run_id=run_id, force=force,
                keep_labels=True, training=False)
            if pending:
                finish()
        loading.result()  # a model that cannot be loaded is an error even when there was nothing to predict
    finally:
        worker.shutdown(cancel_futures=True)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _without_input(store: Store, embedder: ImageEmbedder, products: list[Product]) -> int:
    """How many of these products have neither a title (or description) nor an image with features (counted
    without reading the features)."""
    untitled = [p for p in products if not product_text(p)]
    readable = store.known_features(embedder.model_id, [p.image_hash for p in untitled if p.image_hash])
    return sum(1 for p in untitled if not p.image_hash or p.image_hash not in readable or readable[p.image_hash])


def last_per_id(chunk: list[Product]) -> list[Product]:
    """One product per id (the later row wins, as in the database), in order."""
    return list({p.id: p for p in chunk}.values())
