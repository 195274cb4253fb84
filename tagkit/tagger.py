"""A model version as `predict`, `eval` and (through the stored predictions) `review` use it: the catalogue
model's category and tags, merged with the tags the attribute extractor reads from the titles when the version
has one (`tagkit train` with `train: extract:` in tagkit.yaml)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagkit.extract import merge_tags

if TYPE_CHECKING:
    from tagkit.dataset import Dataset
    from tagkit.extract import AttributeExtractor, Extraction
    from tagkit.models import CatalogueModel, Prediction
    from tagkit.taxonomy import Taxonomy

EXTRACTOR_FOLDER = "extractor"  # inside a model version's folder
CANDIDATES = 10  # below-threshold tags kept per product, as the catalogue model keeps


class Tagger:
    """Predicts with a catalogue model and, when there is one, an attribute extractor.

    Each product's tags are the model's and the extractor's merged (`merge_tags`): each tag once with its best
    score, one value per single-valued attribute, canonical and allowed by the taxonomy the extractor was
    trained with for the attributes it knows (other attributes' tags pass through). Below-threshold tags of
    both, and values that lost to a better one, are the candidates. The extractor reads the titles only
    (a product without one gets the model's answer) and is given the model's predicted category as the
    product type, never a label (so `eval` stays honest). Without an extractor this is the model itself.
    """

    def __init__(self, model: CatalogueModel, extractor: AttributeExtractor | None = None,
                 taxonomy: Taxonomy | None = None) -> None:
        self.model = model
        self.extractor = extractor
        self.taxonomy = taxonomy if taxonomy is not None else getattr(extractor, "taxonomy", None)
        single = set(model.report.get("single_valued_attributes", []))
        self.single_valued = single | (extractor.single_valued if extractor is not None else set())

    @classmethod
    def load(cls, folder: str | Path) -> Tagger:
        """The model of a version folder, with its extractor when it has one (`extractor/`)."""
        from tagkit.extract import AttributeExtractor
        from tagkit.models import CatalogueModel

        folder = Path(folder)
        extractor_folder = folder / EXTRACTOR_FOLDER
        extractor = AttributeExtractor.load(extractor_folder) if extractor_folder.is_dir() else None
        return cls(CatalogueModel.load(folder), extractor)

    def predict(self, data: Dataset, top_k: int = 3) -> list[Prediction]:
        """One Prediction per product of `data`, in order."""
        predictions = self.model.predict(data, top_k=top_k)
        titled = np.flatnonzero(data.has_text)
        if self.extractor is None or not len(titled):
            return predictions
        products = replace(data.subset(titled), categories=[predictions[i].category or () for i in titled])
        for i, extraction in zip(titled, self.extractor.predict(products), strict=True):
            predictions[i] = self.merge(predictions[i], extraction)
        return predictions

    def merge(self, prediction: Prediction, extraction: Extraction) -> Prediction:
        """The model's prediction with the extracted tags merged in."""
        tags = merge_tags(prediction.tags, extraction.tags, taxonomy=self.taxonomy, single_valued=self.single_valued)
        kept = {tag for tag, _ in tags}
        rest = [*prediction.tags, *extraction.tags, *prediction.candidates, *extraction.candidates]
        if self.taxonomy is not None:
            rest = list(self.taxonomy.valid(rest, keep_unknown=True).items())
        candidates = [(tag, score) for tag, score in merge_tags(rest) if tag not in kept][:CANDIDATES]
        return replace(prediction, tags=tags, candidates=candidates)
