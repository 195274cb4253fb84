"""What a model says about one product."""

from __future__ import annotations

from dataclasses import dataclass, field

from tagkit.product import Tag


@dataclass
class Prediction:
    """A model's answer for one product.

    `category` is the best path (always one of the training paths; None when the model has no categories or
    the product `no_input`), `category_score` its calibrated probability, `alternatives` the next best paths.
    `tags` are the accepted tags (score at or above the tuned threshold; at most one value per
    single-valued attribute), `candidates` the best of the rest, for review. `no_input` is set when the
    product had neither a title nor an image: there is nothing to predict from, so nothing is predicted.
    """

    category: tuple[str, ...] | None
    category_score: float
    alternatives: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    tags: list[tuple[Tag, float]] = field(default_factory=list)
    candidates: list[tuple[Tag, float]] = field(default_factory=list)
    no_input: bool = False
