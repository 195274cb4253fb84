"""Title text → sparse TF-IDF features: hazm-normalised word 1–2-grams (the pairs marked at the title's start
and end) and character 2–5-grams."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from tagkit.text import tokens


def normalised(text: str) -> str:
    """The text as tagkit's tokens (hazm normalisation, folded, lowercased) joined by spaces."""
    return " ".join(tokens(text)) if text else ""


def word_ngrams(text: str) -> list[str]:
    """Words and word pairs of an already normalised text (a module function, so it pickles)."""
    words = text.split()
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def bounded_word_ngrams(text: str) -> list[str]:
    """Words and word pairs, the pairs including a start and an end marker (`<s> کاپشن`): a title's first word
    usually names the product type. Measured (Torob titles, 5-fold CV on the training part): 0.954 → 0.960."""
    words = text.split()
    return words + [f"{a} {b}" for a, b in itertools.pairwise(["<s>", *words, "</s>"])]


class TextFeatures:
    """Fits the vocabularies on training titles; turns titles into one L2-normalised-per-block CSR matrix.

    A product without text (empty after normalisation) gets an all-zero row; `has_text` says which.
    `boundaries`: mark the start and end of the title in the word pairs (`bounded_word_ngrams`).
    """

    def __init__(self, char_ngrams: tuple[int, int] = (2, 5), char_min_df: int = 2,
                 max_char_features: int = 200_000, boundaries: bool = True) -> None:
        self.boundaries = boundaries
        self.char_ngrams = char_ngrams
        self.char_min_df = char_min_df
        self.max_char_features = max_char_features
        self.words: TfidfVectorizer | None = None
        self.chars: TfidfVectorizer | None = None

    @staticmethod
    def prepare(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        norm = [normalised(t) for t in texts]
        return norm, np.array([bool(n) for n in norm], dtype=bool)

    def fit(self, norm: Sequence[str]) -> TextFeatures:
        docs = [n for n in norm if n] or ["_"]
        analyzer = bounded_word_ngrams if self.boundaries else word_ngrams
        self.words = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, dtype=np.float32)
        self.words.fit(docs)
        min_df = self.char_min_df if len(docs) >= 20 * self.char_min_df else 1
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, min_df=min_df,
                                     sublinear_tf=True, dtype=np.float32, max_features=self.max_char_features)
        self.chars.fit(docs)
        return self

    def transform(self, norm: Sequence[str]) -> sp.csr_matrix:
        assert self.words is not None and self.chars is not None, "fit first"
        if not norm:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        x = sp.hstack([self.words.transform(norm), self.chars.transform(norm)], format="csr")
        x.data *= np.float32(np.sqrt(0.5))  # each block has unit norm; the row gets unit norm too
        return x.astype(np.float32)

    @property
    def n_features(self) -> int:
        assert self.words is not None and self.chars is not None
        return len(self.words.vocabulary_) + len(self.chars.vocabulary_)
