"""Products with their image features, as aligned arrays: what models train and predict on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from tagkit.product import Product, Tag

if TYPE_CHECKING:
    from tagkit.image import ImageEmbedder
    from tagkit.store import Store


@dataclass
class Dataset:
    """N products side by side. `embeddings[i]` is zeros where `has_image[i]` is False; its last `colour_dim`
    values are the image's colour features (`tagkit.colour`), the rest the image model's embedding.

    `texts` hold the raw title and description (models normalise them their own way);
    `categories[i]` is () and `tags[i]` is () where a product has no such labels; `tags_reviewed` holds the ids
    of products whose review was finished, so that () there means that none of the tags apply.
    """

    ids: list[str]
    texts: list[str]
    embeddings: np.ndarray
    has_image: np.ndarray
    categories: list[tuple[str, ...]]
    tags: list[tuple[Tag, ...]]
    colour_dim: int = 0
    tags_reviewed: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tags_known(self) -> np.ndarray:
        """Products whose tags are known: they have some, or their review was finished (`tags_reviewed`)."""
        return np.array([bool(t) or i in self.tags_reviewed for t, i in zip(self.tags, self.ids, strict=True)],
                        dtype=bool)

    @property
    def has_text(self) -> np.ndarray:
        return np.array([bool(t.strip()) for t in self.texts], dtype=bool)

    @classmethod
    def from_products(cls, products: Sequence[Product], embeddings: dict[str, np.ndarray], dim: int,
                      colour_dim: int = 0) -> Dataset:
        """Align products with their image features (looked up by product id)."""
        matrix = np.zeros((len(products), dim), dtype=np.float32)
        has_image = np.zeros(len(products), dtype=bool)
        for i, product in enumerate(products):
            vector = embeddings.get(product.id)
            if vector is not None:
                matrix[i] = vector
                has_image[i] = True
        return cls(
            ids=[p.id for p in products],
            texts=[product_text(p) for p in products],
            embeddings=matrix,
            has_image=has_image,
            categories=[p.category for p in products],
            tags=[p.tags for p in products],
            colour_dim=colour_dim,
            tags_reviewed=frozenset(p.id for p in products if p.tags_reviewed),
        )

    def subset(self, index: Iterable[int] | np.ndarray) -> Dataset:
        """The products at these positions, in that order."""
        idx = index if isinstance(index, np.ndarray) else np.fromiter(index, dtype=np.intp)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Dataset(
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            embeddings=self.embeddings[idx],
            has_image=self.has_image[idx],
            categories=[self.categories[i] for i in idx],
            tags=[self.tags[i] for i in idx],
            colour_dim=self.colour_dim,
            tags_reviewed=self.tags_reviewed,
        )

    def without_text(self) -> Dataset:
        """The same products with their titles removed (for image-only evaluation)."""
        return replace(self, texts=[""] * len(self))

    def without_images(self) -> Dataset:
        """The same products with their images removed (for title-only evaluation)."""
        return replace(self, embeddings=np.zeros_like(self.embeddings), has_image=np.zeros(len(self), dtype=bool))


def product_text(product: Product) -> str:
    """The text a model reads for a product: its title, then its description."""
    return f"{product.title}\n{product.description}".strip()


def load_dataset(store: Store, embedder: ImageEmbedder, where: str | None = None,
                 params: Iterable[object] = ()) -> Dataset:
    """Every stored product (or those matching `where`) with its cached image features from `embedder`."""
    return products_dataset(store, list(store.iter_products(where, params)), embedder)


def products_dataset(store: Store, products: Sequence[Product], embedder: ImageEmbedder) -> Dataset:
    """These products with their cached image features from `embedder`."""
    vectors = store.get_features(embedder.model_id, [p.image_hash for p in products if p.image_hash])
    embeddings = {p.id: vectors[p.image_hash] for p in products if p.image_hash in vectors}
    return Dataset.from_products(products, embeddings, embedder.dim, embedder.colour_dim)
