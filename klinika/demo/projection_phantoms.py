"""Pixel data for the chest radiograph (CR) and the cardiac ultrasound cine (US).

The radiograph sums projected thicknesses of ellipsoids and tubes; the ultrasound is a
sector of speckle with a beating four-chamber heart, a colour-Doppler jet and an ECG trace.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from klinika.demo.canvas import Canvas, smooth

CR_SIZE = 2048
CR_SPACING_MM = 0.2
US_ROWS, US_COLUMNS = 480, 640


def chest_radiograph(seed: int) -> NDArray[np.uint16]:
    """Return a PA chest radiograph, 12-bit MONOCHROME2 (bone bright, lungs dark)."""
    rng = np.random.default_rng([seed, 7301])
    att = Canvas(CR_SIZE, CR_SIZE, CR_SPACING_MM, 0.0)
    att.dome(0, 40, 175, 260, 210)  # trunk
    for side in (-1, 1):
        att.dome(side * 205, -150, 45, 120, 70)  # arms
        att.dome(side * 180, -175, 32, 32, 55)  # humeral heads
    for side, (cx, cy, ax, ay) in ((-1, (-78, -25, 72, 140)), (1, (82, -30, 68, 135))):
        att.dome(cx, cy, ax, ay, -150)  # lungs replace tissue by air
        hilum_x, hilum_y = side * 38, -20
        for _ in range(26):
            angle = rng.uniform(-1.3, 1.3)
            length = rng.uniform(50, 120)
            end_x = hilum_x + side * math.cos(angle) * length
            end_y = hilum_y + math.sin(angle) * length
            start = rng.uniform(6, 16)
            att.tube(
                hilum_x + side * math.cos(angle) * start,
                hilum_y + math.sin(angle) * start,
                end_x,
                end_y,
                rng.uniform(1.2, 3.0),
                10,
            )
    att.dome(30, 55, 82, 62, 95)  # heart
    att.dome(-4, -95, 22, 70, 40)  # mediastinum
    for level in range(-210, 140, 26):
        att.dome(0, level, 21, 11, 28)  # vertebral bodies
    for i in range(10):
        for side in (-1, 1):
            _rib(att, side, -175 + i * 24.0)
    for side in (-1, 1):
        att.tube(side * 15, -165, side * 160, -195, 7.0, 40)  # clavicles
    image = 300.0 + 9.0 * att.image
    image = smooth(image, passes=2)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(20.0)
    return np.clip(image, 0, 4095).astype(np.uint16)


def _rib(att: Canvas, side: int, y_spine: float) -> None:
    """A posterior rib (curving down laterally) and its fainter anterior part."""
    window = att.window(side * 88.0, y_spine + 16, 72, 40)
    if window is not None:
        rs, cs, dx, dy = window
        s = np.clip((np.abs(dx + np.float32(side * 88.0)) - 18) / 140, 0, None)
        centre = -18 * s + 50 * s * s
        dist = (dy + np.float32(16) - centre) / np.float32(5.5)
        band = np.sqrt(np.clip(1 - dist * dist, 0, None)) * (s <= 1)
        att.image[rs, cs] += np.float32(22) * band
    att.tube(side * 150, y_spine + 40, side * 40, y_spine + 80, 4.0, 9)


def echo_cine(seed: int, frames: int) -> NDArray[np.uint8]:
    """Return an apical four-chamber echo cine as (frames, 480, 640, 3) RGB uint8."""
    rng = np.random.default_rng([seed, 7401])
    rows = np.arange(US_ROWS, dtype=np.float32)[:, np.newaxis]
    cols = np.arange(US_COLUMNS, dtype=np.float32)[np.newaxis, :]
    apex_x, apex_y = 320.0, 30.0
    radius = np.hypot(cols - apex_x, rows - apex_y)
    angle = np.arctan2(cols - apex_x, rows - apex_y)
    sector = (radius < 440) & (np.abs(angle) < math.radians(40)) & (rows > apex_y)
    speckle = smooth(rng.rayleigh(1.0, (US_ROWS, US_COLUMNS)).astype(np.float32), 2, axis=1)
    gain = np.exp(-radius / 700.0).astype(np.float32)
    out = np.zeros((frames, US_ROWS, US_COLUMNS, 3), dtype=np.uint8)
    for frame in range(frames):
        phase = 0.5 - 0.5 * math.cos(2 * math.pi * frame / frames)  # 0 diastole .. 1 systole
        tissue = Canvas(US_ROWS, US_COLUMNS, 1.0, 0.35)
        tissue.ellipse(0, 20, 230, 210, 0.75)  # myocardium
        squeeze = 1 - 0.18 * phase
        tissue.ellipse(55, -40, 70 * squeeze, 135 * squeeze, 0.04, angle_deg=-8)  # LV
        tissue.ellipse(-60, -30, 52 * squeeze, 115 * squeeze, 0.04, angle_deg=8)  # RV
        tissue.ellipse(60, 150, 62 * (1.1 - 0.1 * squeeze), 55, 0.04)  # LA
        tissue.ellipse(-60, 150, 55 * (1.1 - 0.1 * squeeze), 52, 0.04)  # RA
        tissue.ellipse(0, 90, 240, 6, 0.9)  # atrioventricular plane, bright
        jitter = rng.rayleigh(1.0, (US_ROWS, US_COLUMNS)).astype(np.float32)
        echo = tissue.image * (0.8 * speckle + 0.2 * jitter) * gain
        grey = np.clip(echo * 190, 0, 255).astype(np.uint8)
        grey[~sector] = 0
        out[frame] = grey[:, :, np.newaxis]
        _doppler(out[frame], tissue, phase, sector)
        _ecg(out[frame], frame, frames)
    return out


def _doppler(
    rgb: NDArray[np.uint8], tissue: Canvas, phase: float, sector: NDArray[np.bool_]
) -> None:
    """Colour flow through the mitral valve: red inflow in diastole, blue outflow in systole."""
    found = tissue.ellipse_norm(55, 60, 28, 70)
    if found is None:
        return
    rs, cs, norm = found
    jet = (norm <= 1.0) & sector[rs, cs]
    strength = np.clip((1.0 - norm) * 255, 0, 255).astype(np.uint8)
    region = rgb[rs, cs]
    channel = 0 if phase < 0.5 else 2
    region[jet] = 0
    region[..., channel][jet] = np.maximum(strength[jet], 90)
    region[..., 1][jet] = strength[jet] // 4


def _ecg(rgb: NDArray[np.uint8], frame: int, frames: int) -> None:
    """A green ECG trace along the bottom with a marker at the current frame."""
    x = np.arange(40, 600)
    t = (x - 40) / 560 * 2.0
    beat = np.mod(t, 1.0)
    wave = 30 * np.exp(-(((beat - 0.3) / 0.012) ** 2)) - 8 * np.exp(-(((beat - 0.34) / 0.02) ** 2))
    wave += 6 * np.exp(-(((beat - 0.6) / 0.05) ** 2)) + 3 * np.exp(-(((beat - 0.12) / 0.03) ** 2))
    y = (455 - wave).astype(int)
    for dy in (-1, 0, 1):
        rgb[y + dy, x] = (40, 220, 60)
    marker = 40 + int(560 * frame / frames)
    rgb[420:470, marker : marker + 2] = (240, 240, 60)
