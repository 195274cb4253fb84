"""Category and tag models: `CatalogueModel` (fit / predict / save / load) and its `Prediction`s."""

from tagkit.models.catalogue import CatalogueModel
from tagkit.models.prediction import Prediction

__all__ = ["CatalogueModel", "Prediction"]
