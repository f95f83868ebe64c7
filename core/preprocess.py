"""The model's input and output contract, in numpy and Pillow only (no torch).

A sketch reaches a generator the way a Quick, Draw! bitmap would: rendered at ``raster_size``
(28, the numpy_bitmap size), resized bilinearly to the model's ``image_size``, inverted to dark ink
on white paper, scaled to [-1, 1] and repeated over three channels. Training calls these same
functions, so the canvas, the real doodles and the synthetic doodles all look alike to the model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def bitmap_to_input(bitmap: np.ndarray, image_size: int) -> np.ndarray:
    """numpy_bitmap(s) (uint8, ink 255 on 0, shape (H, W) or (N, H, W)) to float32 (N, 3, S, S)."""
    bitmaps = bitmap[None] if bitmap.ndim == 2 else bitmap
    out = np.empty((len(bitmaps), 3, image_size, image_size), dtype=np.float32)
    for i, b in enumerate(bitmaps):
        if b.shape != (image_size, image_size):
            b = np.asarray(
                Image.fromarray(b).resize((image_size, image_size), Image.Resampling.BILINEAR)
            )
        paper = 1.0 - b.astype(np.float32) / 255.0  # dark ink on white paper
        out[i] = (paper * 2.0 - 1.0)[None]
    return out


def output_to_images(batch: np.ndarray) -> np.ndarray:
    """Generator output (N, 3, S, S) in [-1, 1] to uint8 images (N, S, S, 3)."""
    x = np.clip((batch + 1.0) * 127.5, 0.0, 255.0)
    return np.rint(x).astype(np.uint8).transpose(0, 2, 3, 1)
