"""A small 2-D painter for phantoms: ellipses, tubes and blurs on a float32 grid in mm.

Shapes are painted only inside their bounding box, so a slice with twenty organs costs a
few milliseconds rather than twenty full-image passes.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatImage = NDArray[np.float32]


class Canvas:
    """An image in physical units whose pixel centres sit on a regular mm grid.

    ``x`` grows with the column index and ``y`` with the row index; (0, 0) mm is the
    image centre.
    """

    def __init__(self, rows: int, columns: int, spacing_mm: float, fill: float) -> None:
        self.spacing = spacing_mm
        self.image: FloatImage = np.full((rows, columns), fill, dtype=np.float32)
        self.xs = (np.arange(columns, dtype=np.float32) - (columns - 1) / 2) * spacing_mm
        self.ys = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2) * spacing_mm

    def window(
        self, cx: float, cy: float, half_x: float, half_y: float
    ) -> tuple[slice, slice, FloatImage, FloatImage] | None:
        """Return the row/column slices and local coordinates around a box, or None."""
        rows, columns = self.image.shape
        c0 = max(int((cx - half_x - self.xs[0]) / self.spacing) - 1, 0)
        c1 = min(int((cx + half_x - self.xs[0]) / self.spacing) + 2, columns)
        r0 = max(int((cy - half_y - self.ys[0]) / self.spacing) - 1, 0)
        r1 = min(int((cy + half_y - self.ys[0]) / self.spacing) + 2, rows)
        if c0 >= c1 or r0 >= r1:
            return None
        dx = (self.xs[c0:c1] - np.float32(cx))[np.newaxis, :]
        dy = (self.ys[r0:r1] - np.float32(cy))[:, np.newaxis]
        return slice(r0, r1), slice(c0, c1), dx, dy

    def ellipse_norm(
        self, cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0
    ) -> tuple[slice, slice, FloatImage] | None:
        """Return the window and the squared normalised radius of an ellipse in it."""
        if ax <= 0 or ay <= 0:
            return None
        reach = max(ax, ay) if angle_deg else 0.0
        window = self.window(cx, cy, reach or ax, reach or ay)
        if window is None:
            return None
        rs, cs, dx, dy = window
        if angle_deg:
            cos_a = math.cos(math.radians(angle_deg))
            sin_a = math.sin(math.radians(angle_deg))
            dx, dy = dx * cos_a + dy * sin_a, dy * cos_a - dx * sin_a
        return rs, cs, (dx / ax) ** 2 + (dy / ay) ** 2

    def ellipse(
        self,
        cx: float,
        cy: float,
        ax: float,
        ay: float,
        value: float,
        *,
        angle_deg: float = 0.0,
        only_below: float | None = None,
    ) -> None:
        """Paint a filled ellipse; with ``only_below`` only pixels darker than it change."""
        found = self.ellipse_norm(cx, cy, ax, ay, angle_deg)
        if found is None:
            return
        rs, cs, norm = found
        mask = norm <= 1.0
        region = self.image[rs, cs]
        if only_below is not None:
            mask &= region < only_below
        region[mask] = value

    def dome(self, cx: float, cy: float, ax: float, ay: float, depth: float) -> None:
        """Add the projected thickness ``depth * sqrt(1 - r^2)`` of an ellipsoid (radiography)."""
        found = self.ellipse_norm(cx, cy, ax, ay)
        if found is None:
            return
        rs, cs, norm = found
        self.image[rs, cs] += np.float32(depth) * np.sqrt(np.clip(1.0 - norm, 0.0, None))

    def tube(self, x0: float, y0: float, x1: float, y1: float, radius: float, depth: float) -> None:
        """Add the projected thickness of a cylinder of ``radius`` along a segment."""
        window = self.window(
            (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2 + radius, abs(y1 - y0) / 2 + radius
        )
        if window is None:
            return
        rs, cs, dx, dy = window
        ux, uy = x1 - x0, y1 - y0
        length_sq = ux * ux + uy * uy or 1.0
        px = dx + np.float32((x1 - x0) / 2)
        py = dy + np.float32((y1 - y0) / 2)
        along = np.clip((px * ux + py * uy) / length_sq, 0.0, 1.0)
        dist_sq = (px - along * ux) ** 2 + (py - along * uy) ** 2
        profile = np.sqrt(np.clip(1.0 - dist_sq / (radius * radius), 0.0, None))
        self.image[rs, cs] += np.float32(depth) * profile


def smooth(image: FloatImage, passes: int = 1, *, axis: int | None = None) -> FloatImage:
    """Blur with a separable [1, 2, 1] / 4 kernel, ``passes`` times (edges kept)."""
    out = image.astype(np.float32, copy=True)
    axes = (0, 1) if axis is None else (axis,)
    for _ in range(passes):
        for ax in axes:
            moved = np.moveaxis(out, ax, 0)
            inner = moved[1:-1] * 2 + moved[:-2] + moved[2:]
            moved[1:-1] = inner * np.float32(0.25)
    return out
