"""Image loading and the bundled ONNX image embedder."""

from __future__ import annotations

import numpy as np
from PIL import Image

INPUT_SIZE = 224
PAD_COLOUR = (255, 255, 255)


def letterbox(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Scale an RGB image so its longer side is `size` (bicubic), centre it on a white square.

    Returns float32 [3, size, size], RGB, 0..255: the bundled model's input contract.
    Letterboxing keeps the whole product (centre-cropping cuts the top and bottom of tall photos).
    """
    width, height = image.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = image.resize(new_size, Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), PAD_COLOUR)
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)
