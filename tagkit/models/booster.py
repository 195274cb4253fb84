"""A saved LightGBM model, predicted through LightGBM's C library without importing the `lightgbm` package.

`import lightgbm` imports scikit-learn and with it scipy.stats: about 0.8 s of start-up, spent by every
`tagkit predict` (measured: bench/notes/speed.md). Predicting needs only two calls of the library that
package ships (`lib_lightgbm`), so `SavedBooster` loads that library itself. Where it cannot be found (an
unusual install), `load_booster` falls back to `lightgbm.Booster`; both predict the same numbers.
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_PREDICT_RAW_SCORE = 1  # C_API_PREDICT_RAW_SCORE


@cache
def _library() -> ctypes.CDLL | None:
    """LightGBM's C library from the installed `lightgbm` package (found without importing it), or None."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    name = {"Windows": "lib_lightgbm.dll", "Darwin": "lib_lightgbm.dylib"}.get(platform.system(), "lib_lightgbm.so")
    for folder in (package / "lib", package / "bin", package.parent):
        if (folder / name).is_file():
            try:
                lib = ctypes.CDLL(str(folder / name))
            except OSError:
                return None
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            return lib
    return None


class SavedBooster:
    """A saved LightGBM model (a model file, or the text of one), for predictions: the subset of
    `lightgbm.Booster` tagkit predicts with."""

    def __init__(self, lib: ctypes.CDLL, *, path: str | Path | None = None, text: str | None = None) -> None:
        self._lib = lib
        self._path, self._text = path, text
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        if text is not None:
            self._check(lib.LGBM_BoosterLoadModelFromString(text.encode("utf-8"), ctypes.byref(iterations),
                                                            ctypes.byref(self._handle)))
        else:
            self._check(lib.LGBM_BoosterCreateFromModelfile(str(path).encode("utf-8"), ctypes.byref(iterations),
                                                            ctypes.byref(self._handle)))
        classes = ctypes.c_int()
        self._check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(classes)))
        self.num_classes = classes.value

    def _check(self, code: int) -> None:
        if code != 0:
            raise RuntimeError(f"LightGBM: {self._lib.LGBM_GetLastError().decode('utf-8', 'replace')}")

    def model_to_string(self) -> str:
        return self._text if self._text is not None else Path(str(self._path)).read_text("utf-8")

    def predict(self, x: np.ndarray, num_iteration: int = -1, raw_score: bool = True, num_threads: int = 1
                ) -> np.ndarray:
        """Scores of the rows of `x` (one per row, or rows × classes), from the first `num_iteration` trees (all
        when <= 0): raw, or through the objective's transformation (a probability for "binary") with
        `raw_score=False`. One thread unless told otherwise: tagkit predicts while images are embedded."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        rows = x.shape[0]
        out = np.empty(rows * self.num_classes, dtype=np.float64)
        if rows == 0:
            return out
        length = ctypes.c_int64()
        self._check(self._lib.LGBM_BoosterPredictForMat(
            self._handle, x.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(_DTYPE_FLOAT64), ctypes.c_int32(rows),
            ctypes.c_int32(x.shape[1]), ctypes.c_int(1),
            ctypes.c_int(_PREDICT_RAW_SCORE if raw_score else _PREDICT_NORMAL), ctypes.c_int(0),
            ctypes.c_int(num_iteration if num_iteration and num_iteration > 0 else -1),
            f"num_threads={num_threads}".encode(), ctypes.byref(length),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
        return out if self.num_classes == 1 else out.reshape(rows, self.num_classes)

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None and self._handle.value:
            self._lib.LGBM_BoosterFree(self._handle)
            self._handle = ctypes.c_void_p()


def load_booster(path: str | Path | None = None, *, text: str | None = None) -> Any:
    """A saved model (a model file, or its `text`: `lightgbm.Booster.model_to_string()`) as a `SavedBooster`, or
    as a `lightgbm.Booster` when LightGBM's library cannot be loaded on its own."""
    if path is not None:
        _check_whole(Path(path))
    lib = _library()
    if lib is not None:
        return SavedBooster(lib, path=path, text=text)
    import lightgbm as lgb

    return lgb.Booster(model_str=text) if text is not None else lgb.Booster(model_file=str(path))


def _check_whole(path: Path) -> None:
    """Raise ValueError for a model file cut short: LightGBM's parser aborts the whole process on some of them
    (a C++ `terminate`, exit 134), where tagkit must say which file is damaged. A whole file has its trees'
    end marker and ends with the `pandas_categorical:` line LightGBM writes last."""
    with path.open("rb") as file:
        file.seek(max(path.stat().st_size - 4096, 0))
        tail = file.read()
    last = tail.rstrip().rsplit(b"\n", 1)[-1]
    if not last.startswith(b"pandas_categorical:") or b"end of parameters" not in tail:
        raise ValueError(f"{path.name} is not a whole LightGBM model (cut short?)")
