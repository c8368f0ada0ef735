"""Read a window of a 16-bit PCM WAV held in memory without decoding the rest of it."""
from __future__ import annotations

import io
import wave

import numpy as np


def wav_info(data: bytes) -> tuple[int, int, int]:
    """(sample rate, channels, frames) from the header."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes()


def read_window(data: bytes, start_s: float, seconds: float, rate: int | None = None) -> np.ndarray:
    """Mono float32 samples of [start_s, start_s + seconds), zero-padded outside the track.

    Only the requested frames are read (the wave module seeks by byte offset), so the
    cost does not grow with the length of the track.
    """
    with wave.open(io.BytesIO(data)) as w:
        sr, ch, n, width = w.getframerate(), w.getnchannels(), w.getnframes(), w.getsampwidth()
        if width != 2:
            raise ValueError(f"expected 16-bit PCM, got {8 * width}-bit")
        if rate is not None and rate != sr:
            raise ValueError(f"audio is {sr} Hz, the loader expects {rate} Hz")
        want = int(round(seconds * sr))
        first = int(round(start_s * sr))
        lo, hi = max(first, 0), min(first + want, n)
        out = np.zeros(want, np.float32)
        if hi > lo:
            w.setpos(lo)
            pcm = np.frombuffer(w.readframes(hi - lo), dtype="<i2").astype(np.float32) / 32768.0
            if ch > 1:
                pcm = pcm.reshape(-1, ch).mean(axis=1)
            out[lo - first: lo - first + len(pcm)] = pcm
    return out


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono float [-1, 1] -> 16-bit PCM WAV bytes."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
