"""tagkit: categories and tags for e-commerce products, from images and Persian or English titles.

The library under the `tagkit` command. Names are imported on first use, so `import tagkit` stays cheap:

    from tagkit import Store, import_products, ImageEmbedder
    with Store("tagkit.db") as store:
        report = import_products(store, "products.csv", embedder=ImageEmbedder())
"""

from __future__ import annotations

import os
from importlib import import_module
from importlib.util import find_spec
from typing import Any

__version__ = "0.1.0"

# tagkit is offline: onnxruntime (1.2x and later) would otherwise send usage events to Microsoft and keep a device
# id and an event queue under ~/.cache/Microsoft. It reads this when it is imported, so it is set before that.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# LightGBM's and scikit-learn's OpenMP threads wait for work by spinning on a core, by default: beside another busy
# process (a second tagkit, a browser) they spin in each other's way. Two `train`s of the demo at once on 2 cores
# took 99 s each, 37 s with waiting threads asleep (bench/notes/speed.md). Read when OpenMP starts, so set here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "Product": "tagkit.product",
    "Tag": "tagkit.product",
    "Problem": "tagkit.product",
    "Store": "tagkit.store",
    "import_products": "tagkit.ingest",
    "ImportReport": "tagkit.ingest",
    "read_input": "tagkit.catalogue",
    "read_products": "tagkit.catalogue",
    "read_folder": "tagkit.catalogue",
    "load_config": "tagkit.config",
    "find_config": "tagkit.config",
    "Mapping": "tagkit.config",
    "ImageEmbedder": "tagkit.image",
    "ImageError": "tagkit.image",
    "load_image": "tagkit.image",
    "train": "tagkit.training",
    "TrainReport": "tagkit.training",
    "predict": "tagkit.predicting",
    "PredictReport": "tagkit.predicting",
    "PredictedProduct": "tagkit.predicting",
    "evaluate": "tagkit.evaluation",
    "apply_feedback": "tagkit.feedback",
    "review_queue": "tagkit.queue",
    "rank_uncertain": "tagkit.queue",
    "Dataset": "tagkit.dataset",
    "normalize": "tagkit.text",
    "tokens": "tagkit.text",
    "Taxonomy": "tagkit.taxonomy",
    "load_taxonomy": "tagkit.taxonomy",
    "AttributeExtractor": "tagkit.extract",
    "backup": "tagkit.backups",
    "Backup": "tagkit.backups",
    # what the functions above raise, for a script to catch
    "ConfigError": "tagkit.config",
    "TaxonomyError": "tagkit.taxonomy",
    "ModelError": "tagkit.image",
    "NothingToLearn": "tagkit.training",
    "SourceReadInPart": "tagkit.training",
    "NothingToScore": "tagkit.evaluation",
    "ModelNotFound": "tagkit.versions",
    "ModelDamaged": "tagkit.versions",
    "ModelMismatch": "tagkit.predicting",
    "OutputError": "tagkit.export",
    "FeedbackFileError": "tagkit.feedback",
    "ReadOnlyError": "tagkit.store",
    "NotTagkitDatabase": "tagkit.store",
    "NewerDatabase": "tagkit.store",
    "Locked": "tagkit.lock",
}

__all__ = ["__version__", *_EXPORTS]


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    if name.isidentifier() and find_spec(f"{__name__}.{name}") is not None:  # a module: `tagkit.lock.WriterLock`
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tagkit' has no attribute {name!r}")
