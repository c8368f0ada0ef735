"""Pixels and samples of one synthetic video: textured objects over moving clutter, and
the sounding object's tone over noise.

The sounding object shows that it sounds, as a struck or vibrating object would: its
brightness follows its sound's amplitude envelope and the outer band of its shape glows
(more when louder, never off, so steady sounds show too). Silent distractors of other
classes share the scene, so a model has to find the object that sounds rather than read
a colour histogram, and the task stays well posed for every video.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion

from pipeline.synth.classes import SynthClass


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean mask of a shape drawn in a ``size`` x ``size`` square."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 1
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if shape == "triangle":
        return (v <= 0.8) & (abs(u) <= (v + 0.9) / 1.7)
    if shape == "diamond":
        return abs(u) + abs(v) <= 1
    if shape == "cross":
        return ((abs(u) < 0.33) & (abs(v) < 0.95)) | ((abs(v) < 0.33) & (abs(u) < 0.95))
    if shape == "ring":
        return (r <= 1) & (r >= 0.55)
    if shape == "star":
        return r <= 0.55 + 0.4 * np.cos(5 * np.arctan2(v, u))
    if shape == "hexagon":
        return np.maximum(abs(u) * 0.866 + abs(v) * 0.5, abs(v)) <= 0.9
    raise ValueError(f"unknown shape {shape!r}")


def texture(name: str, size: int) -> np.ndarray:
    """Multiplicative pattern in [0.35, 1] over the sprite."""
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    period = max(size // 4, 3)
    if name == "solid":
        return np.ones((size, size), np.float32)
    if name == "stripes":
        pat = ((i + j) // max(period // 2, 1)) % 2
    elif name == "checker":
        pat = (i // period + j // period) % 2
    elif name == "dots":
        pat = 1 - (((i % period) - period / 2) ** 2 + ((j % period) - period / 2) ** 2
                   < (period / 3.5) ** 2)
    else:
        raise ValueError(f"unknown texture {name!r}")
    return (0.35 + 0.65 * pat).astype(np.float32)


def sprite(cls: SynthClass, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float32 [s, s, 3] in 0..1, alpha float32 [s, s]) for a class's object."""
    alpha = shape_mask(cls.shape, size).astype(np.float32)
    rgb = np.asarray(cls.rgb, np.float32) / 255.0
    img = texture(cls.texture, size)[..., None] * rgb[None, None, :]
    return img * alpha[..., None], alpha


def rim_mask(alpha: np.ndarray) -> np.ndarray:
    """The outer band of a sprite's shape (about a tenth of its size, at least 2 px)."""
    width = max(2, alpha.shape[0] // 10)
    inside = alpha > 0
    return inside & ~binary_erosion(inside, iterations=width)


def sounding_look(rgb: np.ndarray, alpha: np.ndarray, band: np.ndarray, gain: float,
                  rim: float) -> np.ndarray:
    """A sounding object's sprite for one frame: scaled by ``gain``, its ``band``
    (``rim_mask``) blended towards white by ``rim`` (colours premultiplied by alpha)."""
    out = rgb * gain
    out[band] += (alpha[band, None] - out[band]) * rim
    return out


def envelope(rhythm: str, t: np.ndarray, phase: float) -> np.ndarray:
    """Amplitude envelope in [0, 1] of a class's rhythm at times ``t`` (seconds)."""
    if rhythm == "steady":
        return np.ones_like(t)
    if rhythm.startswith("pulse"):
        rate = float(rhythm[5:])
        x = (t * rate + phase) % 1.0
        return np.clip(np.minimum(x, 0.55 - x) * 25.0, 0.0, 1.0)  # soft 0.55 duty gate
    if rhythm.startswith("tremolo"):
        rate = float(rhythm[7:])
        return 0.5 + 0.5 * np.sin(2 * np.pi * (rate * t + phase))
    raise ValueError(f"unknown rhythm {rhythm!r}")


def tone(cls: SynthClass, t: np.ndarray) -> np.ndarray:
    w = 2 * np.pi * cls.f0 * t
    if cls.timbre == "sine":
        y = np.sin(w)
    elif cls.timbre == "square":
        y = sum(np.sin(k * w) / k for k in (1, 3, 5, 7))
    elif cls.timbre == "saw":
        y = sum(np.sin(k * w) / k for k in range(1, 7))
    elif cls.timbre == "bell":
        y = np.sin(w + 1.5 * np.sin(1.4 * w))
    else:
        raise ValueError(f"unknown timbre {cls.timbre!r}")
    return y / np.max(np.abs(y))


def render_audio(cls: SynthClass, n_samples: int, rate: int, phase: float, snr_db: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The sounding object's tone times its envelope, plus white noise at ``snr_db``."""
    t = np.arange(n_samples) / rate
    sig = tone(cls, t) * envelope(cls.rhythm, t, phase)
    p_sig = np.mean(sig ** 2) + 1e-12
    noise = rng.standard_normal(n_samples) * np.sqrt(p_sig / 10 ** (snr_db / 10))
    y = sig + noise
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@dataclass
class ObjectTrack:
    cls: SynthClass
    size: int
    xy: np.ndarray          # [T, 2] top-left corner, float pixels (may leave the frame)
    sounding: bool
    bbox: tuple[int, int, int, int]  # tight box of the shape inside its sprite (x0, y0, x1, y1)


def bouncing_track(n_frames: int, size: int, h: int, w: int, speed: float,
                   offscreen: bool, rng: np.random.Generator) -> np.ndarray:
    """Positions bouncing inside the frame; with ``offscreen`` up to half the object
    may leave it (the centre always stays inside, so a box always exists)."""
    lo = -size / 2 if offscreen else 0.0
    hi = np.array([w - size / 2 if offscreen else w - size, h - size / 2 if offscreen else h - size])
    pos = rng.uniform(lo, hi)
    ang = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(ang), np.sin(ang)])
    out = np.empty((n_frames, 2), np.float32)
    for f in range(n_frames):
        out[f] = pos
        pos = pos + vel
        for d in range(2):
            if pos[d] < lo or pos[d] > hi[d]:
                vel[d] = -vel[d]
                pos[d] = np.clip(pos[d], lo, hi[d])
    return out


def background(n_frames: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Drifting low-saturation clutter with a slow flicker: [T, H, W, 3] float32."""
    cell = 8
    big_h, big_w = 2 * h, 2 * w
    blocks = rng.uniform(0.15, 0.55, (big_h // cell, big_w // cell, 3)).astype(np.float32)
    canvas = np.kron(blocks, np.ones((cell, cell, 1), np.float32))
    for _ in range(int(rng.integers(6, 14))):  # clutter: random dim bars
        y0, x0 = rng.integers(0, big_h - 4), rng.integers(0, big_w - 4)
        hh, ww = rng.integers(2, 10), rng.integers(8, 40)
        if rng.random() < 0.5:
            hh, ww = ww, hh
        canvas[y0:y0 + hh, x0:x0 + ww] = rng.uniform(0.1, 0.6, 3)
    grey = canvas.mean(axis=2, keepdims=True)
    canvas = 0.5 * canvas + 0.5 * grey  # desaturate so objects stay the colourful things
    start = rng.uniform(0, [h, w])
    drift = rng.uniform(-0.6, 0.6, 2)
    flicker = 1 + 0.08 * np.sin(2 * np.pi * (np.arange(n_frames) / 40.0 + rng.random()))
    frames = np.empty((n_frames, h, w, 3), np.float32)
    for f in range(n_frames):
        y, x = (start + drift * f) % np.array([h, w])
        frames[f] = canvas[int(y):int(y) + h, int(x):int(x) + w] * flicker[f]
    return frames


def paste(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: float, y: float) -> None:
    """Alpha-blend a sprite with top-left (x, y) into ``frame``, clipped to the frame."""
    h, w = frame.shape[:2]
    s = alpha.shape[0]
    x0, y0 = int(round(x)), int(round(y))
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x0, fy0 - y0
    a = alpha[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0, None]
    region = frame[fy0:fy1, fx0:fx1]
    region *= 1 - a
    region += rgb[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0]


def mask_bbox(alpha: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(alpha > 0)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def visible_box(track: ObjectTrack, f: int, h: int, w: int) -> list[float] | None:
    """Tight box of the object's pixels inside the frame, normalised to [0, 1]."""
    x, y = (int(round(float(v))) for v in track.xy[f])
    bx0, by0, bx1, by1 = track.bbox
    x0, y0 = max(x + bx0, 0), max(y + by0, 0)
    x1, y1 = min(x + bx1, w), min(y + by1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0 / w, y0 / h, x1 / w, y1 / h]
