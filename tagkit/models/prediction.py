"""What a model says about one product."""

from __future__ import annotations

from dataclasses import dataclass, field

from tagkit.product import Tag


@dataclass
class Prediction:
    """A model's answer for one product.

    `category` is the best path (always one of the training paths; None only when the model has no
    categories), `category_score` its calibrated probability, `alternatives` the next best paths with theirs.
    `tags` are the accepted tags (score at or above the tuned threshold; at most one value per
    single-valued attribute), `candidates` the best of the rest, for review. `low_confidence` is set
    when the product had neither a title nor an image (the answer is the training prior).
    """

    category: tuple[str, ...] | None
    category_score: float
    alternatives: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    tags: list[tuple[Tag, float]] = field(default_factory=list)
    candidates: list[tuple[Tag, float]] = field(default_factory=list)
    low_confidence: bool = False
