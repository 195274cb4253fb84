"""A model version as `predict`, `eval` and (through the stored predictions) `review` use it: the catalogue
model's category and tags, merged with the tags the attribute extractor reads from the titles when the version
has one (`tagkit train` with `train: extract:` in tagkit.yaml), and held to the database's taxonomy."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagkit.extract import merge_tags
from tagkit.product import Tag
from tagkit.text import match_key

if TYPE_CHECKING:
    from tagkit.dataset import Dataset
    from tagkit.extract import AttributeExtractor, Extraction
    from tagkit.models import CatalogueModel, Prediction
    from tagkit.taxonomy import Taxonomy

EXTRACTOR_FOLDER = "extractor"  # inside a model version's folder
SOURCES_FILE = "sources.json"  # in the extractor's folder: which source's tags each attribute keeps
SOURCE_OPTIONS = ("both", "model", "extractor")
CANDIDATES = 10  # below-threshold tags kept per product, as the catalogue model keeps


class Tagger:
    """Predicts with a catalogue model and, when there is one, an attribute extractor.

    Each product's tags are the model's and the extractor's merged (`merge_tags`): each tag once with its best score
    (a model's tag of a value the extractor read in the title, by match key, spelt as the labels spell it in titles
    that write it that way: `Men's`, where the model reads one word `Men`), one value per single-valued attribute,
    canonical and allowed by `taxonomy` for the attributes it knows (other attributes' tags pass through). Below-
    threshold tags of both, and values that lost to a better one, are the candidates; the category and its
    alternatives are the taxonomy's paths. `taxonomy` is the one in force when predicting (`predict` and `eval` pass
    the database's, so a `taxonomy map` or a new import applies to a model trained before it); without one, the
    taxonomy the extractor was trained with. The extractor reads the titles only (a product without one gets the
    model's answer) and is given the model's predicted category as the product type, never a label (so `eval` stays
    honest). Without an extractor or a taxonomy this is the model itself.

    `sources` (attribute -> `model`, `extractor` or `both`; chosen by `tagkit train` on held-out products and
    saved as `extractor/sources.json`) says whose tags an attribute keeps when the extractor read the title: the
    other source's tags of it go to the candidates. An attribute not named, and every attribute of a version
    saved without the file, keeps both (the merge above).
    """

    def __init__(self, model: CatalogueModel, extractor: AttributeExtractor | None = None,
                 taxonomy: Taxonomy | None = None, sources: dict[str, str] | None = None) -> None:
        self.model = model
        self.extractor = extractor
        self.sources = {name: source for name, source in (sources or {}).items() if source != "both"}
        self.taxonomy = taxonomy if taxonomy is not None else getattr(extractor, "taxonomy", None)
        single = set(model.report.get("single_valued_attributes", []))
        self.single_valued = single | (extractor.single_valued if extractor is not None else set())

    @classmethod
    def load(cls, folder: str | Path, taxonomy: Taxonomy | None = None) -> Tagger:
        """The model of a version folder, with its extractor when it has one (`extractor/`)."""
        from tagkit.extract import AttributeExtractor
        from tagkit.models import CatalogueModel

        folder = Path(folder)
        extractor_folder = folder / EXTRACTOR_FOLDER
        extractor = AttributeExtractor.load(extractor_folder) if extractor_folder.is_dir() else None
        return cls(CatalogueModel.load(folder), extractor, taxonomy, load_sources(extractor_folder))

    @property
    def learns_categories(self) -> bool:
        """Whether the model predicts a category (one trained on tags alone does not)."""
        return any(task.is_category for task in self.model.tasks)

    def category_paths(self) -> set[tuple[str, ...]]:
        """The category paths this model can predict: those it learnt, as the taxonomy in force names them (only
        the taxonomy's own paths when it has a category tree)."""
        paths = {tuple(path) for task in self.model.tasks if task.is_category for path in task.classes}
        if self.taxonomy is None:
            return paths
        paths = {self.taxonomy.canonical_category(path) for path in paths}
        return {path for path in paths if not self.taxonomy.categories or self.taxonomy.has_category(path)}

    def tag_values(self) -> set[Tag] | None:
        """The tags this model can predict (those it learnt, as the taxonomy in force names and allows them); None
        with an extractor, which also reads values it never saw in the titles."""
        from tagkit.models.labels import NONE_VALUE

        if self.extractor is not None:
            return None
        tags = {Tag(task.name, value) for task in self.model.tasks if not task.is_category for value in task.classes
                if value != NONE_VALUE}
        if self.model.multi is not None:
            tags.update(self.model.multi.classes)
        if self.taxonomy is None:
            return tags
        held = (self.taxonomy.canonical(tag) for tag in tags)  # as predict gives them: only the values it allows
        return {tag for tag in held if self.taxonomy.passes(tag)}

    def predict(self, data: Dataset, top_k: int = 3) -> list[Prediction]:
        """One Prediction per product of `data`, in order. With a taxonomy, every candidate path of the model
        is made canonical before the best `top_k` are taken, so the category does not depend on `top_k`."""
        if self.extractor is None and self.taxonomy is None:
            return self.model.predict(data, top_k=top_k)
        wide = max(top_k, self.model.n_candidates) if self.taxonomy is not None else top_k
        predictions = self.model.predict(data, top_k=wide)
        titled = np.flatnonzero(data.has_text) if self.extractor is not None else []
        extractions: dict[int, Extraction] = {}
        if len(titled):
            products = replace(data.subset(titled), categories=[predictions[i].category or () for i in titled])
            extractions = dict(zip(titled, self.extractor.predict(products), strict=True))
        return [self.merge(prediction, extractions.get(i), top_k) for i, prediction in enumerate(predictions)]

    def merge(self, prediction: Prediction, extraction: Extraction | None = None,
              top_k: int | None = None) -> Prediction:
        """The model's prediction with the extracted tags merged in, held to the taxonomy (the best `top_k`
        category paths kept, all of them when None)."""
        extracted, extra = (extraction.tags, extraction.candidates) if extraction is not None else ([], [])
        if extraction is not None and extraction.as_written:  # the same value (match key), as the title writes it
            read = {(tag.name, match_key(tag.value)): tag for tag in extraction.as_written}
            prediction = replace(prediction, tags=[(read.get((tag.name, match_key(tag.value)), tag), score)
                                                   for tag, score in prediction.tags])
        mine, theirs = prediction.tags, extracted
        if extraction is not None and self.sources:  # an attribute keeps one source's tags; the rest: candidates
            mine = [(tag, score) for tag, score in mine if self.sources.get(tag.name) != "extractor"]
            theirs = [(tag, score) for tag, score in theirs if self.sources.get(tag.name) != "model"]
        rest = [*prediction.tags, *extracted, *prediction.candidates, *extra]
        if self.taxonomy is not None:
            tags, candidates = self.taxonomy.hold_tags([*mine, *theirs], rest, self.single_valued, CANDIDATES)
            prediction = self._canonical_categories(prediction)
        else:
            tags = merge_tags(mine, theirs, single_valued=self.single_valued)
            kept = {tag for tag, _ in tags}
            candidates = [(tag, score) for tag, score in merge_tags(rest) if tag not in kept][:CANDIDATES]
        if top_k is not None:
            prediction = replace(prediction, alternatives=prediction.alternatives[: max(top_k - 1, 0)])
        return replace(prediction, tags=tags, candidates=candidates)

    def _canonical_categories(self, prediction: Prediction) -> Prediction:
        """The category and alternatives as the taxonomy's paths (`Taxonomy.hold_categories`: none when none of
        them scores `taxonomy.MIN_ALLOWED_SCORE`, rather than a guess scored 0.00)."""
        if prediction.category is None:
            return prediction
        ranked = self.taxonomy.hold_categories([(prediction.category, prediction.category_score),
                                                *prediction.alternatives])
        if not ranked:  # the model's answer is a path outside the tree
            return replace(prediction, category=None, category_score=0.0, alternatives=[])
        return replace(prediction, category=ranked[0][0], category_score=ranked[0][1], alternatives=ranked[1:])


def load_sources(extractor_folder: Path) -> dict[str, str]:
    """The saved choice of source per attribute (`SOURCES_FILE`); none for a version saved before it."""
    path = Path(extractor_folder) / SOURCES_FILE
    if not path.is_file():
        return {}
    chosen = json.loads(path.read_text("utf-8")).get("chosen", {})
    return {str(name): str(source) for name, source in chosen.items() if source in SOURCE_OPTIONS}


def save_sources(extractor_folder: Path, chosen: dict[str, str]) -> None:
    path = Path(extractor_folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / SOURCES_FILE).write_text(json.dumps({"chosen": dict(sorted(chosen.items()))}, ensure_ascii=False,
                                                indent=1) + "\n", "utf-8")
