"""Sounds of the hard synthetic corpus (``synth difficulty=hard``, the default).

In the easy corpus a class has a fixed pitch and timbre, so a randomly initialised audio
network already separates the classes (held-out kNN 0.99 at random init): its audio
numbers could not show learning. Here a class is a *rhythm*: the onset pattern of its
notes within a one-second bar (every class has 3 or 4 notes a bar, so loudness and note
density say little). Everything a random filter bank reads easily is drawn per video and
shared by all classes: pitch (2.5 octaves), timbre, note decay, loudness, a reverberant
room, coloured background noise, and quieter notes of other classes' rhythms as
distractors. Only the temporal pattern, which the sounding object's glow follows on the
video side, tells the class; a network has to learn it.

With more classes than rhythms, classes beyond the first ``len(PATTERNS)`` also differ in
timbre family (a class's index picks both), so any ``n_classes`` up to 64 stays distinct.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

STEPS = 8        # grid steps per bar
BAR_S = 1.0      # bar length, seconds: any one-second window holds one whole bar
# onset patterns on the 8-step grid, distinct under rotation (the window starts anywhere)
PATTERNS = {
    "beat": (0,),               # one note a bar
    "halves": (0, 4),           # two, evenly
    "flam": (0, 1),             # two, close together
    "waltz": (0, 3, 5),         # gaps 3, 2, 3
    "gallop": (0, 1, 2),        # gaps 1, 1, 6
    "march": (0, 2, 4, 6),      # gaps 2, 2, 2, 2
    "stutter": (0, 1, 4, 5),    # gaps 1, 3, 1, 3
    "roll": (0, 1, 2, 3, 4, 5, 6, 7),
}
FAMILIES = {  # timbres drawn per video within a class's family
    "harmonic": ("sine", "square", "saw", "organ"),
    "inharmonic": ("bell", "metal", "wood", "noise"),
}


def class_sound(index: int) -> tuple[str, str]:
    """(rhythm, timbre family) of class ``index``."""
    names = list(PATTERNS)
    fams = list(FAMILIES)
    return names[index % len(names)], fams[(index // len(names)) % len(fams)]


def pattern_envelope(rhythm: str, t: np.ndarray, phase: float, decay_s: float) -> np.ndarray:
    """Amplitude in [0, 1] at times ``t``: a 5 ms attack and an exponential decay after
    each onset of ``rhythm``, the bar shifted by ``phase`` (a fraction of a bar)."""
    onsets = np.asarray(PATTERNS[rhythm], np.float64) * BAR_S / STEPS
    pos = (t / BAR_S + phase) % 1.0 * BAR_S  # time within the bar
    env = np.zeros_like(t)
    for o in onsets:
        for shift in (0.0, BAR_S):  # a note near the bar's end rings into the next bar
            dt = pos + shift - o
            on = dt >= 0
            note = np.where(on, np.minimum(dt / 0.005, 1.0) * np.exp(-np.clip(dt, 0, None) / decay_s), 0.0)
            env = np.maximum(env, note)
    return env


def note_wave(timbre: str, f0: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sustained tone of ``timbre`` at ``f0`` Hz, peak-normalised."""
    w = 2 * np.pi * f0 * t
    if timbre == "sine":
        y = np.sin(w)
    elif timbre == "square":
        y = sum(np.sin(k * w) / k for k in (1, 3, 5, 7))
    elif timbre == "saw":
        y = sum(np.sin(k * w) / k for k in range(1, 7))
    elif timbre == "organ":
        y = np.sin(w) + 0.6 * np.sin(2 * w) + 0.4 * np.sin(4 * w)
    elif timbre == "bell":
        y = np.sin(w + 1.5 * np.sin(1.4 * w))
    elif timbre == "metal":
        y = sum(np.sin(r * w) for r in (1.0, 2.76, 5.4))
    elif timbre == "wood":
        y = np.sin(w) + 0.5 * np.sin(3.93 * w)
    elif timbre == "noise":  # band of noise around f0
        spec = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.fft.rfftfreq(len(t), t[1] - t[0] if len(t) > 1 else 1.0)
        spec *= np.exp(-0.5 * ((freqs - f0) / (0.25 * f0)) ** 2)
        y = np.fft.irfft(spec, len(t))
    else:
        raise ValueError(f"unknown timbre {timbre!r}")
    return y / (np.max(np.abs(y)) + 1e-12)


def voice(rhythm: str, family: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One rhythm played with a pitch, timbre, decay and bar phase drawn from ``rng``."""
    f0 = 150.0 * 2 ** rng.uniform(0.0, 2.5)
    timbre = FAMILIES[family][int(rng.integers(len(FAMILIES[family])))]
    return note_wave(timbre, f0, t, rng) * pattern_envelope(rhythm, t, float(rng.random()),
                                                            float(rng.uniform(0.03, 0.09)))


def room(y: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Reverberation: a decaying-noise impulse response (RT60 0.1-0.5 s), mixed 10-50 % wet."""
    rt60 = rng.uniform(0.05, 0.3)
    n = int(rt60 * rate)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    wet = fftconvolve(y, ir)[: len(y)]
    wet *= np.sqrt(np.mean(y ** 2) / (np.mean(wet ** 2) + 1e-12))
    mix = rng.uniform(0.05, 0.3)
    return (1 - mix) * y + mix * wet


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a random spectral slope (white to brown), unit power."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64) + 1.0
    spec /= f ** (rng.uniform(0.0, 1.0))
    y = np.fft.irfft(spec, n)
    return y / (np.std(y) + 1e-12)


def render_hard_audio(label: int, others: list[int], n_samples: int, rate: int, phase: float,
                      snr_db: float, distractor_db: tuple[float, float],
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(waveform float32, the sounding rhythm's envelope at ``rate``) of one video: the
    class's rhythm, ``others``' rhythms ``distractor_db`` quieter, a room, background
    noise at ``snr_db`` and a random loudness."""
    t = np.arange(n_samples) / rate
    rhythm, family = class_sound(label)
    f0 = 150.0 * 2 ** rng.uniform(0.0, 2.5)
    timbre = FAMILIES[family][int(rng.integers(len(FAMILIES[family])))]
    env = pattern_envelope(rhythm, t, phase, float(rng.uniform(0.03, 0.09)))
    sig = note_wave(timbre, f0, t, rng) * env
    p_sig = np.mean(sig ** 2) + 1e-12
    for c in others:
        r, fam = class_sound(c)
        d = voice(r, fam, t, rng)
        level = 10 ** (rng.uniform(*distractor_db) / 20)
        sig = sig + d * np.sqrt(p_sig / (np.mean(d ** 2) + 1e-12)) * level
    sig = room(sig, rate, rng)
    y = sig + coloured_noise(n_samples, rng) * np.sqrt(p_sig / 10 ** (snr_db / 10))
    loud = rng.uniform(0.1, 0.7)
    return (loud * y / (np.max(np.abs(y)) + 1e-12)).astype(np.float32), env
