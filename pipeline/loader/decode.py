"""Decode chosen frames of an in-memory mp4: PyAV (default), torchcodec or decord.

Every backend returns uint8 [T, H, W, 3] (a torch tensor, channels last as decoders
produce it) for the same frame indices: index i is the i-th frame in presentation order,
shown at i / fps in a constant-frame-rate shard video; indices past the end repeat the
last frame. A test holds the three to identical frames on real media. PyAV can also crop,
resize and mirror each clip view in its own RGB conversion (``crop_views``,
``decode_crop.py``) when ``loader.clip.crop_in_decoder`` is on. Decoders are made
per call, inside the worker that uses them: decord is not fork-safe, and a decoder per
sample keeps no state that a forked worker could share by accident.

Which is fastest depends on the machine and the clips (``bench loader`` measures all
three raw, README), so the loader's default ``auto`` times them on the run's own shards
(``backend_choice.py``). torchcodec is
PyTorch's own decoder (FFmpeg underneath, the batch ``get_frames_at`` API) and the one
that decodes on the GPU (``device="cuda"``, NVDEC), worth it for high-resolution sources.
"""
from __future__ import annotations

import io
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

FrameDecoder = Callable[[bytes, Sequence[int]], torch.Tensor]
BACKENDS = ("torchcodec", "decord", "pyav")


def _clamped(indices: Sequence[int], n: int) -> list[int]:
    return [min(max(int(i), 0), n - 1) for i in indices]


class TorchCodecFrames:
    """torchcodec with an exact seek index (``seek_mode="exact"`` scans the packets once,
    so index i is the i-th frame, never a neighbour) and one FFmpeg thread: the loader's
    workers are the parallelism."""

    def __init__(self, device: str = "cpu"):
        self.device = device

    def __call__(self, data: bytes, indices: Sequence[int]) -> torch.Tensor:
        from torchcodec.decoders import VideoDecoder

        dec = VideoDecoder(data, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC",
                           device=self.device)
        if len(dec) == 0:
            raise ValueError("video stream without frames")
        return dec.get_frames_at(_clamped(indices, len(dec))).data


def decode_decord(data: bytes, indices: Sequence[int]) -> torch.Tensor:
    import decord

    vr = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=1)
    return torch.from_numpy(vr.get_batch(_clamped(indices, len(vr))).asnumpy())


class PyAVFrames:
    """PyAV decoding of chosen frames, with one RGB converter kept for the process.

    Why a class: ``frame.to_ndarray(format="rgb24")`` builds a new swscale context for
    every frame (~3 ms, more than decoding a 128p frame); a kept ``VideoReformatter``
    reuses it (0.04-0.2 ms). It is made on first use and never pickled, so each loader
    worker has its own."""

    def __init__(self):
        self._rgb = None
        self._threads_arg = True
        self._scalers: list = []  # crop_views: one per view

    def __getstate__(self) -> dict:
        return {"_rgb": None, "_threads_arg": self._threads_arg, "_scalers": []}

    def _to_rgb(self, frame) -> np.ndarray:
        """One swscale thread: PyAV >= 14 passes ``threads=0`` (one per core) by default,
        and on 2 cores with 2 workers that pool cost ~1 ms of waiting per 128p frame against
        0.02-0.2 ms in one thread (measured, issue 24); the pixels are the same."""
        if self._rgb is None:
            from av.video.reformatter import VideoReformatter
            self._rgb = VideoReformatter()
        if self._threads_arg:
            try:
                return self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
            except TypeError:  # PyAV before the threads argument: it converts in one thread
                self._threads_arg = False
        return self._rgb.reformat(frame, format="rgb24").to_ndarray()

    def frames(self, data: bytes, wanted: Sequence[int]) -> Iterator[tuple[int, object]]:
        """(index, ``av.VideoFrame``) for every index of ``wanted``, in increasing order
        (indices past the end: the last frame); raises if one is not in the stream."""
        import av

        wanted = sorted({int(i) for i in wanted})
        found: set[int] = set()
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"  # one thread: workers are the parallelism
            fps = float(stream.average_rate or stream.guessed_rate)
            tb = float(stream.time_base)
            start = stream.start_time or 0
            last_frame, last_idx = None, -1
            for group in _runs(wanted, max(int(round(fps)), 1)):
                # each run starts more than a second after the last one ended, so a
                # keyframe lies between: seeking to it decodes less than going on
                container.seek(int((group[0] / fps) / tb) + start, stream=stream, backward=True)
                group_wanted = set(group)
                for frame in container.decode(stream):
                    idx = int(round((frame.pts - start) * tb * fps))
                    last_frame, last_idx = frame, idx
                    if idx in group_wanted and idx not in found:
                        found.add(idx)
                        yield idx, frame
                    if idx >= group[-1]:
                        break
                if last_idx < group[-1]:
                    break  # the stream ended: later frames repeat the last one
            for i in wanted:  # indices past the end repeat the last frame
                if i not in found and last_frame is not None and i > last_idx:
                    found.add(i)
                    yield i, last_frame
        missing = [i for i in wanted if i not in found]
        if missing:
            raise ValueError(f"frames {missing[:5]} not found in the video stream")

    def __call__(self, data: bytes, indices: Sequence[int]) -> torch.Tensor:
        got = {i: self._to_rgb(frame) for i, frame in self.frames(data, indices)}
        return torch.from_numpy(np.stack([got[int(i)] for i in indices]))

    def crop_views(self, data: bytes, clips: Sequence[Sequence[int]], plan, outs: Sequence[torch.Tensor]) -> tuple[int, int]:
        """Each view's crop of its frames ``clips[v]``, resized and mirrored into ``outs[v]``
        in the RGB conversion itself (``decode_crop.py``); ``plan(h, w)`` draws the crops."""
        from pipeline.loader.decode_crop import crop_views
        return crop_views(self.frames(data, [i for c in clips for i in c]), clips, plan, outs, self._scalers)


def _runs(wanted: list[int], gop: int) -> list[list[int]]:
    """Sorted frame indices split where two are more than ``gop`` apart. Shard videos have
    a keyframe every second (``gop`` = fps frames), so across such a gap (GDT's two clips
    at least a second apart) a seek decodes fewer frames than decoding through the gap."""
    runs = [[wanted[0]]]
    for i in wanted[1:]:
        if i - runs[-1][-1] > gop:
            runs.append([i])
        else:
            runs[-1].append(i)
    return runs


def require_mp4(data: bytes) -> None:
    """Refuse shard members that are not MP4 (ISO-BMFF, ``ftyp`` box first), before any
    decoder sees them. The shard stage writes only MP4, and all three backends are FFmpeg
    underneath: they guess the format from the bytes, so a text playlist (HLS, ffconcat)
    planted in a tar would make them open the files or URLs it lists."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        raise ValueError(f"not an MP4 (ISO-BMFF) video (starts {bytes(data[:8])!r}); shard videos "
                         "are MP4 and other containers are refused")


class Mp4Only:
    """A backend that decodes only what ``require_mp4`` accepts (picklable for spawn)."""

    def __init__(self, decode: FrameDecoder):
        self.decode = decode

    def __call__(self, data: bytes, indices: Sequence[int]) -> torch.Tensor:
        require_mp4(data)
        return self.decode(data, indices)

    @property
    def crops(self) -> bool:
        """Whether the decoder crops and resizes in its own conversion (``crop_views``)."""
        from pipeline.loader.decode_crop import supported
        return hasattr(self.decode, "crop_views") and supported()

    def crop_views(self, data: bytes, clips, plan, outs) -> tuple[int, int]:
        require_mp4(data)
        return self.decode.crop_views(data, clips, plan, outs)


def check_cuda_decode() -> None:
    """One clear error, before any work, where CUDA decoding cannot run."""
    from pipeline.errors import InputError
    if not torch.cuda.is_available():
        raise InputError("loader.clip.decode_device=cuda: this machine has no CUDA device "
                         "(torch.cuda.is_available() is False); use decode_device=cpu")


def get_decoder(name: str, device: str = "cpu") -> FrameDecoder:
    """A frame decoder for ``name``; only torchcodec decodes on ``device="cuda"``.
    ``auto`` here, with no shards to time it on (``ClipLoader`` resolves it on the run's
    shards first), is the first installed in ``backend_choice.PREFERENCE``: the frames
    are the same whichever decodes them."""
    if name == "auto":
        from pipeline.loader.backend_choice import installed_backends
        name = "torchcodec" if device == "cuda" else (installed_backends() or ["pyav"])[0]
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown decode device {device!r}; choose cpu or cuda")
    if device == "cuda":
        if name != "torchcodec":
            raise ValueError(f"decode_device=cuda needs backend=torchcodec, not {name!r}")
        check_cuda_decode()
    if name == "torchcodec":
        return Mp4Only(TorchCodecFrames(device))
    if name == "decord":
        return Mp4Only(decode_decord)
    if name == "pyav":
        return Mp4Only(PyAVFrames())
    raise ValueError(f"unknown video backend {name!r}; choose from {list(BACKENDS)}")
