"""A 3-D brain MR phantom sampled on any slice plane, with T1 and T2 contrasts.

Objects are ellipsoids in patient coordinates (mm, PS3.3 C.7.6.2.1.1: x to the left, y to the
back, z to the head), painted in order; the cortex gets gyri by modulating its radius.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from klinika.demo.canvas import smooth

Weighting = Literal["T1", "T2"]

# Signal per tissue as (T1-weighted, T2-weighted), in arbitrary scanner units.
TISSUE: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0),
    "fat": (1500.0, 900.0),
    "bone": (120.0, 80.0),
    "csf": (300.0, 2600.0),
    "gray": (800.0, 1300.0),
    "white": (1150.0, 850.0),
    "vitreous": (250.0, 2400.0),
    "lesion": (500.0, 2100.0),
    "muscle": (700.0, 500.0),
}


@dataclass(frozen=True)
class _Ellipsoid:
    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    tissue: str
    gyri: float = 0.0


BRAIN = (
    _Ellipsoid((0, 8, -15), (80, 100, 100), "fat"),
    _Ellipsoid((0, 8, -12), (75, 95, 94), "bone"),
    _Ellipsoid((0, 8, -8), (70, 90, 87), "csf"),
    _Ellipsoid((0, 8, -6), (68, 88, 82), "gray", gyri=0.03),
    _Ellipsoid((0, 8, 2), (56, 74, 62), "white", gyri=0.05),
    _Ellipsoid((-16, 4, 2), (14, 12, 11), "gray"),
    _Ellipsoid((16, 4, 2), (14, 12, 11), "gray"),
    _Ellipsoid((-11, 0, 14), (7, 30, 10), "csf"),
    _Ellipsoid((11, 0, 14), (7, 30, 10), "csf"),
    _Ellipsoid((0, 10, 0), (2, 12, 9), "csf"),
    _Ellipsoid((0, 62, -50), (52, 30, 24), "gray", gyri=0.04),
    _Ellipsoid((0, 62, -48), (30, 16, 14), "white"),
    _Ellipsoid((0, 28, -40), (13, 13, 34), "white"),
    _Ellipsoid((0, 42, -38), (4, 4, 6), "csf"),
    _Ellipsoid((-32, -78, -40), (17, 15, 15), "fat"),
    _Ellipsoid((32, -78, -40), (17, 15, 15), "fat"),
    _Ellipsoid((-32, -80, -40), (12, 12, 12), "vitreous"),
    _Ellipsoid((32, -80, -40), (12, 12, 12), "vitreous"),
    _Ellipsoid((24, -22, 26), (7, 8, 7), "lesion"),
)


def sample_plane(
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    z: NDArray[np.float32],
    weighting: Weighting,
    rng: np.random.Generator,
) -> NDArray[np.uint16]:
    """Return the phantom's signal at the given patient coordinates, with Rician noise."""
    column = 0 if weighting == "T1" else 1
    signal = np.zeros(x.shape, dtype=np.float32)
    for shape in BRAIN:
        dx = (x - shape.center[0]) / shape.axes[0]
        dy = (y - shape.center[1]) / shape.axes[1]
        dz = (z - shape.center[2]) / shape.axes[2]
        radius_sq = dx * dx + dy * dy + dz * dz
        limit = 1.0
        if shape.gyri:
            folds = np.sin(np.arctan2(dy, dx) * 26) * np.sin(np.arctan2(dz, np.hypot(dx, dy)) * 18)
            limit = (1.0 + shape.gyri * folds) ** 2
        signal[radius_sq <= limit] = TISSUE[shape.tissue][column]
    # Receive-coil shading: brighter towards the back of the head.
    signal *= np.float32(0.85) + np.float32(0.15) * np.clip((y + 100) / 200, 0, 1)
    signal = smooth(signal)
    sigma = np.float32(25.0)
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * sigma
    magnitude: NDArray[np.float32] = np.hypot(real, imag)
    return np.clip(magnitude, 0, 4095).astype(np.uint16)
