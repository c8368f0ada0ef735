"""The project's one WAV format: 16-bit PCM with a canonical 44-byte header, written by
``pcm_wav`` (shards, players) and read a window at a time by ``read_window`` (loader).

A canonical header + raw samples means sample ``n`` lies at byte ``44 + 2 n`` per
channel: any window is read by offset, without decoding the rest. ``wav_layout`` walks
the RIFF chunks, so WAVs from elsewhere (extra chunks, stereo) read too."""
from __future__ import annotations

import struct

import numpy as np


def wav_layout(data: bytes) -> tuple[int, int, int, int, int]:
    """(sample rate, channels, bytes per sample, offset of the samples, frames) of a PCM
    WAV held in memory, from its RIFF chunks (the samples themselves are not touched)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt ":
            tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            if tag not in (1, 0xFFFE):  # PCM, or WAVE_FORMAT_EXTENSIBLE around it
                raise ValueError(f"WAV format tag {tag} is not PCM")
            fmt = (rate, ch, bits // 8)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            size = min(size, len(data) - pos - 8)  # a truncated file: what is there
            return (*fmt, pos + 8, size // (fmt[1] * fmt[2]))
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    raise ValueError("WAV without a data chunk")


def _window(data: bytes, start_s: float, seconds: float, rate: int | None) -> tuple[np.ndarray, int, int]:
    """(int16 samples [k, channels] of the window that lie inside the track, where they
    start in the window, window length): only those frames are read, as a view of the
    bytes at their offset, so the cost does not grow with the length of the track."""
    sr, ch, width, offset, n = wav_layout(data)
    if width != 2:
        raise ValueError(f"expected 16-bit PCM, got {8 * width}-bit")
    if rate is not None and rate != sr:
        raise ValueError(f"audio is {sr} Hz, the loader expects {rate} Hz")
    want = int(round(seconds * sr))
    first = int(round(start_s * sr))
    lo, hi = max(first, 0), min(first + want, n)
    pcm = np.frombuffer(data, "<i2", count=max(hi - lo, 0) * ch, offset=offset + lo * ch * 2)
    return pcm.reshape(-1, ch), lo - first, want


def read_window(data: bytes, start_s: float, seconds: float, rate: int | None = None) -> np.ndarray:
    """Mono float32 samples of [start_s, start_s + seconds), zero-padded outside the track."""
    pcm, at, want = _window(data, start_s, seconds, rate)
    out = np.zeros(want, np.float32)
    if len(pcm):
        out[at:at + len(pcm)] = pcm.astype(np.float32).mean(axis=1) / 32768.0
    return out


def read_pcm_window(data: bytes, start_s: float, seconds: float, rate: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """The same window as 16-bit integers (channels averaged, rounded): what the loader's
    workers ship, half the bytes of float32 and exactly the stored samples of mono WAVs.
    Written into ``out`` (int16 [n]) when given."""
    pcm, at, want = _window(data, start_s, seconds, rate)
    if out is None:
        out = np.zeros(want, np.int16)
    elif out.shape != (want,):
        raise ValueError(f"window of {want} samples does not fit {tuple(out.shape)}")
    else:
        out.fill(0)
    if len(pcm):
        mono = pcm[:, 0] if pcm.shape[1] == 1 else np.rint(pcm.mean(axis=1)).astype(np.int16)
        out[at:at + len(mono)] = mono
    return out


def pcm_wav(pcm: bytes, rate: int) -> bytes:
    """Mono 16-bit PCM samples -> a complete WAV file (no optional chunks)."""
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16,
                         1, 1, rate, rate * 2, 2, 16, b"data", len(pcm))
    return header + pcm


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono float [-1, 1] -> 16-bit PCM WAV bytes."""
    return pcm_wav((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), rate)
