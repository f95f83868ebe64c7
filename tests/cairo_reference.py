"""The reference numpy_bitmap recipe (Quick, Draw!'s cairo renderer), for tests and benchmarks.

Re-implemented from the published description: scale the 256-unit space plus padding into the
image, centre the bounding box, stroke each polyline with round caps and joins.
"""

from __future__ import annotations

import numpy as np


def cairo_render(strokes, side: int = 28, line_diameter: float = 16, padding: float = 16) -> np.ndarray:
    import cairo

    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, side, side)
    ctx = cairo.Context(surface)
    ctx.set_antialias(cairo.ANTIALIAS_BEST)
    ctx.set_line_cap(cairo.LINE_CAP_ROUND)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)
    ctx.set_line_width(line_diameter)
    total_padding = padding * 2.0 + line_diameter
    scale = side / (256.0 + total_padding)
    ctx.scale(scale, scale)
    ctx.translate(total_padding / 2.0, total_padding / 2.0)
    ctx.set_source_rgb(0, 0, 0)
    ctx.paint()
    bbox = np.hstack(strokes).max(axis=1)
    offset = ((256.0 - bbox) / 2.0).reshape(-1, 1)
    ctx.set_source_rgb(1, 1, 1)
    for s in strokes:
        xv, yv = s + offset
        ctx.move_to(xv[0], yv[0])
        for x, y in zip(xv, yv):
            ctx.line_to(x, y)
        ctx.stroke()
    surface.flush()
    data = np.ndarray((side, surface.get_stride()), dtype=np.uint8, buffer=surface.get_data())
    # ARGB32 is stored as native-endian 32-bit words; any colour byte of white ink is the coverage.
    return data[:, 0 : side * 4 : 4].copy()
