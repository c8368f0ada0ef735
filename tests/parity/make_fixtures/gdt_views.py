"""Make the GDT view-sampling fixture: which frames and which audio samples the official
GDT decoder takes for a clip, on real videos.

    python tests/parity/make_fixtures/gdt_views.py --gdt /path/to/GDT \
        --media ../shared/media/video --out tests/parity/fixtures

Runs ``decode`` of facebookresearch/GDT (873e630, ``datasets/decoder.py``) with the K400
script's settings (30 frames, sample rate 1, target fps 30, 1 s of 24 kHz audio, time
index out of 1000 as ``GDTPretrainDataset.__getitem__`` draws it) on lego_toy.mp4
(30 fps) and big_buck_bunny_6ch.mp4 (25 fps). Its ``ffmpeg`` import is stubbed (the wav is
not decoded: the official ``get_spec`` receives a stand-in wav 0, 1, 2, ... of the audio
stream's length at 24 kHz, and ``python_speech_features.logfbank`` is replaced by a stub
that records the slice it is handed, so the first sample of that slice is the official
audio start). The frames it returns are matched (exactly) against every frame PyAV
decodes from the file, giving their source frame indices.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import av
import numpy as np

# the real videos beside the checkout (../shared/media, with their licences), wherever it is cloned
MEDIA = Path(__file__).resolve().parents[3].parent / "shared" / "media" / "video"

VIDEOS = ("lego_toy.mp4", "big_buck_bunny_6ch.mp4")
TIME_INDICES = (0, 1, 137, 500, 999, 1000)
RATE = 24000


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gdt", type=Path, required=True)
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "fixtures")
    args = ap.parse_args()
    seen: dict = {}
    sys.modules["ffmpeg"] = types.ModuleType("ffmpeg")
    psf = types.ModuleType("python_speech_features")

    def logfbank(wav, *a, **k):
        seen["slice"] = (int(wav[0]), len(wav))
        return np.zeros((99, 40))
    psf.logfbank = logfbank
    sys.modules["python_speech_features"] = psf
    sys.modules["spec_augment_pytorch"] = types.SimpleNamespace(spec_augment=None)
    ds = args.gdt / "datasets"
    audio_utils = _module("audio_utils", ds / "audio_utils.py")

    def load_audio(vid_path, fr_sec, num_sec=1, sample_rate=48000, **kw):
        """The official load_audio with the wav from a stand-in instead of ffmpeg."""
        seen["fr_sec"] = fr_sec
        wav = np.arange(seen["wav_len"], dtype=np.int64)
        return audio_utils.get_spec(wav, fr_sec, num_sec=num_sec, sample_rate=sample_rate, **kw)
    audio_utils.load_audio = load_audio
    decoder = _module("gdt_decoder", ds / "decoder.py")
    decoder.load_audio = load_audio

    out = []
    for name in VIDEOS:
        path = args.media / name
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            fps, n_meta = float(vs.average_rate), vs.frames
            source = [(f.pts, f.to_rgb().to_ndarray()) for f in c.decode(video=0)]
            tb = float(vs.time_base)
            audio_seconds = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
        seen["wav_len"] = int(round(audio_seconds * RATE))
        for time_idx in TIME_INDICES:
            container = av.open(str(path))
            frames, _spec = decoder.decode(str(path), container, 1, 30, time_idx, num_clips=1000, video_meta={},
                                           target_fps=30, backend="pyav", max_spatial_scale=160, decode_audio=True,
                                           aug_audio=None, num_sec=1, aud_sample_rate=RATE, aud_spec_type=1)
            idx = []
            for fr in frames.numpy():
                hits = [i for i, (_, s) in enumerate(source) if s.shape == fr.shape and np.array_equal(s, fr)]
                idx.append(hits[0])
            out.append({"video": name, "fps": fps, "frames_in_file": len(source), "frames_meta": n_meta,
                        "time_index": time_idx, "source_frames": idx,
                        "first_frame_time": source[idx[0]][0] * tb, "audio_fr_sec": seen["fr_sec"],
                        "audio_start_sample": seen["slice"][0], "audio_samples": seen["slice"][1],
                        "audio_rate": RATE, "wav_len": seen["wav_len"]})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gdt_views.json").write_text(json.dumps({
        "official": "facebookresearch/GDT 873e630 datasets/decoder.py decode (pyav), audio_utils.get_spec",
        "settings": {"num_frames": 30, "sample_rate": 1, "target_fps": 30, "num_clips": 1000, "num_sec": 1,
                     "aud_sample_rate": RATE}, "clips": out}, indent=1))


if __name__ == "__main__":
    main()
