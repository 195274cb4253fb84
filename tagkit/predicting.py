"""`tagkit predict`: categories and tags for new products, stored in the database and streamed out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagkit.dataset import Dataset
from tagkit.ingest import ImportReport, import_products
from tagkit.product import Problem, Product, format_category
from tagkit.store import now
from tagkit.versions import ModelVersion, find_version

if TYPE_CHECKING:
    from tagkit.config import Mapping
    from tagkit.image import ImageEmbedder
    from tagkit.models import CatalogueModel, Prediction
    from tagkit.store import Store


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
    category_score: float
    alternatives: list[tuple[str, float]]
    tags: list[tuple[str, float]]
    candidates: list[tuple[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PredictReport:
    """What `predict` did."""

    model: str
    products: int = 0
    seconds: float = 0.0
    import_report: ImportReport | None = None


def load_model(store: Store, version: str | None = None) -> tuple[ModelVersion, CatalogueModel]:
    """The newest model version (or the one named) and its loaded model."""
    from tagkit.models import CatalogueModel

    found = find_version(store, version)
    return found, CatalogueModel.load(found.path)


def embedder_for(found: ModelVersion) -> ImageEmbedder:
    """The image embedder the model was trained with; an error if the installed one differs."""
    from tagkit.image import ImageEmbedder

    embedder = ImageEmbedder(variant=found.manifest.get("image_variant", "int8"))
    expected = found.manifest.get("image_model")
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
        category_score=round(float(prediction.category_score), 4),
        alternatives=[(format_category(path), round(float(score), 4)) for path, score in prediction.alternatives],
        tags=[(str(tag), round(float(score), 4)) for tag, score in prediction.tags],
        candidates=[(str(tag), round(float(score), 4)) for tag, score in prediction.candidates],
    )


def dataset_for(store: Store, embedder: ImageEmbedder, products: list[Product]) -> Dataset:
    """Stored products with their cached image features, as a Dataset."""
    vectors = store.get_features(embedder.model_id, [p.image_hash for p in products if p.image_hash])
    embeddings = {p.id: vectors[p.image_hash] for p in products if p.image_hash in vectors}
    return Dataset.from_products(products, embeddings, embedder.dim)


def predict_chunk(store: Store, model: CatalogueModel, found: ModelVersion, embedder: ImageEmbedder,
                  products: list[Product], top_k: int) -> list[PredictedProduct]:
    """Predict for products already stored with their features."""
    predictions = model.predict(dataset_for(store, embedder, products), top_k=top_k)
    return [to_record(p, pred, found.id) for p, pred in zip(products, predictions, strict=True)]


def store_predictions(store: Store, records: list[PredictedProduct]) -> None:
    stamp = now()
    rows = [{
        "product_id": r.id,
        "model_id": r.model,
        "created_at": stamp,
        "category": r.category,
        "category_score": r.category_score,
        "alternatives": json.dumps(r.alternatives, ensure_ascii=False),
        "tags": json.dumps(r.tags, ensure_ascii=False),
        "tag_candidates": json.dumps(r.candidates, ensure_ascii=False),
    } for r in records]
    with store.transaction():
        store.db.table("predictions").upsert_all(rows, pk=("product_id", "model_id"), alter=True)


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
) -> PredictReport:
    """Import `source` (products file or image folder), predict each chunk as it is stored, and store
    the predictions (one row per product and model version). Memory does not grow with the input."""
    started = time.monotonic()
    found, model = load_model(store, version)
    embedder = embedder_for(found)
    report = PredictReport(model=found.id)

    def on_chunk(chunk: list[Product]) -> None:
        records = predict_chunk(store, model, found, embedder, last_per_id(chunk), top_k)
        store_predictions(store, records)
        report.products += len(records)
        if on_prediction:
            for record in records:
                on_prediction(record)

    report.import_report = import_products(
        store, source, mapping=mapping, products_file=products_file, embedder=embedder, on_problem=on_problem,
        on_progress=on_progress, on_chunk=on_chunk, run_id=run_id)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def last_per_id(chunk: list[Product]) -> list[Product]:
    """One product per id (the later row wins, as in the database), in order."""
    return list({p.id: p for p in chunk}.values())
