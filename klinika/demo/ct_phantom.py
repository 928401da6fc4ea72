"""An anatomical chest/abdomen CT phantom, one axial slice at a time, in Hounsfield units.

The anatomy is laid out along ``level`` (0 = lower abdomen, 1 = lung apex) so that any number
of slices covers the whole trunk. ``x`` points to the patient's left and ``y`` to the back
(DICOM patient coordinates, PS3.3 C.7.6.2.1.1), in mm from the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from klinika.demo.canvas import Canvas, smooth

SIZE = 512
PIXEL_SPACING_MM = 0.78125
TRUNK_LENGTH_MM = 375.0

AIR, FAT, SOFT, MUSCLE, BLOOD, LIVER, BONE, CORTEX, LUNG = (
    -1000.0, -100.0, 35.0, 50.0, 180.0, 95.0, 700.0, 900.0, -860.0,
)  # fmt: skip


@dataclass(frozen=True)
class _Vessel:
    """A lung vessel running along z at a fixed place relative to its lung."""

    side: int
    u: float
    v: float
    radius: float
    wobble: float


@dataclass(frozen=True)
class _Nodule:
    """A round lung nodule: centre (mm, level) and radius in mm."""

    x: float
    y: float
    level: float
    radius: float
    value: float


NODULES = (
    _Nodule(-72.0, -18.0, 0.80, 6.0, 40.0),
    _Nodule(78.0, 30.0, 0.62, 8.0, 30.0),
    _Nodule(-95.0, 5.0, 0.70, 4.0, 45.0),
    _Nodule(58.0, -38.0, 0.88, 5.0, -350.0),
)


class CtPhantom:
    """Deterministic CT phantom: ``slice_hu(level, index)`` gives one noisy slice."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = np.random.default_rng([seed, 7101])
        self.vessels = [
            _Vessel(
                side=int(side),
                u=float(r * math.cos(a)),
                v=float(r * math.sin(a)),
                radius=float(rad),
                wobble=float(w),
            )
            for side, r, a, rad, w in zip(
                rng.choice([-1, 1], 70),
                np.sqrt(rng.uniform(0.02, 0.7, 70)),
                rng.uniform(0, 2 * math.pi, 70),
                rng.uniform(1.2, 3.2, 70),
                rng.uniform(-1, 1, 70),
                strict=True,
            )
        ]
        self.bowel = rng.uniform(-1, 1, (14, 4))

    def slice_hu(self, level: float, index: int) -> NDArray[np.float32]:
        """Return the slice at ``level`` (0..1) as float32 HU, noise seeded by ``index``."""
        canvas = Canvas(SIZE, SIZE, PIXEL_SPACING_MM, AIR)
        z_mm = level * TRUNK_LENGTH_MM
        body_ax = 158.0 + 14.0 * math.sin(math.pi * min(level * 1.1, 1.0))
        body_ay = 108.0 + 10.0 * level
        spine_y = body_ay * 0.42
        _table(canvas, body_ay)
        canvas.ellipse(0, 0, body_ax, body_ay, FAT)
        canvas.ellipse(0, 2, body_ax - 13, body_ay - 11, MUSCLE)
        canvas.ellipse(0, 0, body_ax - 24, body_ay - 22, SOFT if level < 0.5 else FAT)
        canvas.ellipse(-35, spine_y + 38, 28, 22, MUSCLE)
        canvas.ellipse(35, spine_y + 38, 28, 22, MUSCLE)
        if level < 0.5:
            self._abdomen(canvas, level, spine_y)
        if level > 0.42:
            self._thorax(canvas, level, z_mm, body_ax, body_ay, spine_y)
        _spine(canvas, z_mm, spine_y)
        _aorta(canvas, level, spine_y)
        if level < 0.12:
            for side in (-1, 1):
                canvas.ellipse(side * 105, spine_y + 5, 62, 11, BONE, angle_deg=side * 38)
        hu = smooth(canvas.image)
        noise = np.random.default_rng([self.seed, 7102, index]).standard_normal(
            hu.shape, dtype=np.float32
        )
        hu += noise * np.float32(12.0)
        return hu

    def _abdomen(self, canvas: Canvas, level: float, spine_y: float) -> None:
        """Liver, spleen, stomach, kidneys, psoas and bowel below the diaphragm."""
        if level < 0.32:
            grow = (0.32 - level) / 0.32
            for side in (-1, 1):
                canvas.ellipse(side * 38, spine_y + 2, 12 + 12 * grow, 12 + 10 * grow, MUSCLE)
        liver = _profile(level, 0.16, 0.44, 0.56)
        if liver > 0:
            canvas.ellipse(-58, -2, 92 * liver, 82 * liver, LIVER)
            canvas.ellipse(-55, 10, 6, 6, BLOOD)
            canvas.ellipse(-80, -15, 5, 5, BLOOD)
        if 0.24 < level < 0.32:
            canvas.ellipse(-62, -58, 16, 14, 8.0)
        spleen = _profile(level, 0.33, 0.44, 0.52)
        if spleen > 0:
            canvas.ellipse(88, 38, 30 * spleen, 44 * spleen, 110.0, angle_deg=-30)
        stomach = _profile(level, 0.36, 0.46, 0.53)
        if stomach > 0:
            canvas.ellipse(48, -42, 46 * stomach, 34 * stomach, 25.0)
            canvas.ellipse(48, -58, 36 * stomach, 16 * stomach, AIR + 60)
        kidney = _profile(level, 0.15, 0.26, 0.37)
        if kidney > 0:
            for side in (-1, 1):
                canvas.ellipse(side * 72, spine_y + 8, 26 * kidney, 40 * kidney, 150.0,
                               angle_deg=side * 25)  # fmt: skip
                canvas.ellipse(side * 64, spine_y + 6, 9 * kidney, 14 * kidney, -20.0,
                               angle_deg=side * 25)  # fmt: skip
        if level < 0.34:
            for i, (px, py, phase, kind) in enumerate(self.bowel):
                wander = math.sin(level * 40 + phase * 6)
                cx = px * 80 + 18 * wander
                cy = -35 + py * 30 + 10 * math.cos(level * 30 + i)
                value = AIR + 80 if kind > 0.3 else (20.0 if kind > -0.4 else 160.0)
                canvas.ellipse(cx, cy, 16, 13, value)

    def _thorax(
        self,
        canvas: Canvas,
        level: float,
        z_mm: float,
        body_ax: float,
        body_ay: float,
        spine_y: float,
    ) -> None:
        """Lungs with vessels and nodules, heart, ribs, sternum, scapulae and clavicles."""
        for side, start in ((-1, 0.53), (1, 0.49)):
            size = _profile(level, start, 0.72, 1.03)
            if size <= 0:
                continue
            cx = side * (70 + 8 * size)
            cy = 8 + 22 * (1 - size)
            ax, ay = 62 * size + 6, 84 * size + 6
            canvas.ellipse(cx, cy, ax, ay, LUNG)
            for vessel in self.vessels:
                if vessel.side != side:
                    continue
                drift = 0.08 * math.sin(level * 9 + vessel.wobble * 5)
                canvas.ellipse(
                    cx + (vessel.u + drift) * ax,
                    cy + vessel.v * ay,
                    vessel.radius * (0.6 + 0.6 * (1 - abs(vessel.u))),
                    vessel.radius,
                    -40.0,
                    only_below=-500,
                )
        for nodule in NODULES:
            dz = (level - nodule.level) * TRUNK_LENGTH_MM
            if abs(dz) < nodule.radius:
                r = math.sqrt(nodule.radius**2 - dz**2)
                canvas.ellipse(nodule.x, nodule.y, r, r, nodule.value, only_below=-500)
        heart = _profile(level, 0.5, 0.64, 0.79)
        if heart > 0:
            canvas.ellipse(22, -28, 62 * heart, 52 * heart, MUSCLE, angle_deg=-25)
            canvas.ellipse(38, -22, 30 * heart, 26 * heart, BLOOD + 40, angle_deg=-25)
            canvas.ellipse(2, -48, 26 * heart, 18 * heart, BLOOD, angle_deg=-25)
        if level > 0.5:
            canvas.ellipse(0, -body_ay + 24, 15, 6, BONE)
        _ribs(canvas, level, z_mm, body_ax, body_ay)
        if 0.72 < level < 0.97:
            for side in (-1, 1):
                canvas.ellipse(side * 98, spine_y + 30, 46, 6, BONE, angle_deg=-side * 22)
        if level > 0.93:
            for side in (-1, 1):
                canvas.ellipse(side * 62, -body_ay + 28, 48, 8, BONE, angle_deg=side * 12)


def _profile(level: float, start: float, peak: float, end: float) -> float:
    """Return an organ's size factor: 0 outside (start, end), 1 at ``peak``, round between."""
    if level <= start or level >= end:
        return 0.0
    edge = start if level < peak else end
    t = (level - peak) / (edge - peak)
    return math.sqrt(max(1.0 - t * t, 0.0))


def _table(canvas: Canvas, body_ay: float) -> None:
    """The patient table: a curved plate under the back."""
    canvas.ellipse(0, 320, 230, 180, 150.0)
    canvas.ellipse(0, 326, 224, 174, -850.0)
    canvas.image[canvas.ys > 168, :] = AIR


def _spine(canvas: Canvas, z_mm: float, spine_y: float) -> None:
    """Vertebra or intervertebral disc depending on z, with the spinal canal."""
    disc = (z_mm % 28.0) < 6.0
    if disc:
        canvas.ellipse(0, spine_y, 19, 16, 90.0)
    else:
        canvas.ellipse(0, spine_y, 19, 16, CORTEX)
        canvas.ellipse(0, spine_y, 16, 13, 260.0)
        canvas.ellipse(0, spine_y + 27, 14, 12, BONE)
        canvas.ellipse(0, spine_y + 48, 5, 14, BONE)
        for side in (-1, 1):
            canvas.ellipse(side * 24, spine_y + 24, 15, 5, BONE, angle_deg=side * 15)
    canvas.ellipse(0, spine_y + 27, 8, 7, 15.0)


def _aorta(canvas: Canvas, level: float, spine_y: float) -> None:
    """Contrast-filled aorta (ascending, arch, descending, iliacs) and the IVC."""
    if level < 0.1:
        for side in (-1, 1):
            canvas.ellipse(side * 22, spine_y - 22, 7, 7, BLOOD + 40)
    elif level < 0.84:
        canvas.ellipse(16, spine_y - 26, 12, 12, BLOOD + 40)
    elif level < 0.88:
        canvas.ellipse(4, (spine_y - 60) / 2, 14, 34, BLOOD + 40, angle_deg=-20)
    if 0.64 < level < 0.84:
        canvas.ellipse(-6, -30, 15, 15, BLOOD + 40)
    if level < 0.6:
        canvas.ellipse(-26, spine_y - 24, 11, 10, BLOOD - 40)


def _ribs(canvas: Canvas, level: float, z_mm: float, body_ax: float, body_ay: float) -> None:
    """Ribs: the ring just inside the chest wall, cut by oblique bands along z."""
    if not 0.42 < level < 0.98:
        return
    outer = canvas.ellipse_norm(0, 0, body_ax - 14, body_ay - 12)
    if outer is None:
        return
    rs, cs, norm_outer = outer
    inner_ax, inner_ay = body_ax - 24, body_ay - 21
    dx = canvas.xs[cs][np.newaxis, :]
    dy = canvas.ys[rs][:, np.newaxis]
    norm_inner = (dx / inner_ax) ** 2 + (dy / inner_ay) ** 2
    ring = (norm_outer <= 1.0) & (norm_inner > 1.0)
    # Ribs fall from the spine to the front; the front of each rib lies ~70 mm lower.
    slope = 70.0 * (1.0 - dy / body_ay) / 2.0
    phase = np.mod(z_mm + slope, 24.0)
    rib = ring & (phase < 8.0) & (np.abs(dx) > 22.0)
    canvas.image[rs, cs][rib] = BONE
