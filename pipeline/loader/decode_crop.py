"""PyAV: a clip view's crop, resize, RGB conversion (and mirror) in the decoder's own
conversion (``loader.clip.crop_in_decoder``), one pass over the crop instead of the
whole frame converted to RGB and then cropped and resized by torch.

How: the crop is drawn before any pixel is touched (``video_transforms.draw_clip``, from
the stream's frame size), the crop's rectangle of each decoded YUV plane is copied into
a small frame of the crop's size (a memory copy of the crop, no conversion), and one
swscale call turns that into the ``size`` x ``size`` RGB output: the scaler the decoder
converts with anyway, now also resizing. Each view keeps its own frame and scaler for
the clip, so the scaler's filters are set up once per view, not per frame.

What differs from the torch path (full-frame RGB, then torchvision's antialiased
bilinear resize) is the interpolation, not the geometry:
- swscale's ``AREA`` (area averaging when shrinking, bilinear when enlarging) against
  torchvision's antialiased bilinear, and the chroma upsampled by that filter instead of
  repeated per 2 x 2 block as the unscaled RGB converter does;
- a crop starting at an odd pixel takes its 4:2:0 chroma from the sample before it:
  the colour, not the brightness, sits one frame pixel off (an exact odd chroma shift
  would need swscale's chroma-position options, which PyAV does not expose).
Measured on the real 128p shards of ``../shared/media/video`` (489 clips of 8 frames,
112 px, random resized crops and centre crops, issue 24): mean absolute difference 2.13
levels of 255 per pixel and channel (odd offsets 2.21, even 2.05), at most 4.7 for a
clip; 99.9 % of a clip's pixels within 20 (median clip), single pixels up to 138 where
saturated colours meet (cartoon edges: the chroma is a quarter of the pixels, and the
two upsamplings place it differently).
``tests/loader/test_decode_crop.py`` holds the mean to a bound. ``AREA`` was taken over
``BILINEAR`` (same difference, ~1.8x its time here) and ``FAST_BILINEAR`` (no area
averaging when shrinking: aliasing on larger sources).
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from pipeline.loader.video_transforms import ClipDraw

# planar YUV formats cropped plane by plane: log2 of the chroma subsampling (x, y)
PLANAR = {"yuv420p": (1, 1), "yuvj420p": (1, 1), "yuv422p": (1, 0), "yuvj422p": (1, 0),
          "yuv444p": (0, 0), "yuvj444p": (0, 0)}
INTERPOLATION = "AREA"
Plan = Callable[[int, int], Sequence[ClipDraw]]


def supported() -> bool:
    """PyAV 14 or newer: frames whose colorspace can be set, a one-thread scaler."""
    import av
    return int(av.__version__.split(".")[0]) >= 14


def planes_of(frame) -> list[np.ndarray]:
    """The frame's planes as 2-D uint8 arrays (rows of ``line_size`` bytes), no copy."""
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes]


class CropView:
    """One view of a clip: its crop of every frame, converted to ``size`` RGB in one swscale
    call (``scaler``: a ``VideoReformatter`` of its own)."""

    def __init__(self, d: ClipDraw, size: tuple[int, int], fmt: str, scaler):
        import av
        from av.video.reformatter import Interpolation

        self.d, self.size, self.fmt, self.scaler = d, size, fmt, scaler
        self.flag = int(Interpolation[INTERPOLATION])
        self.sub = PLANAR.get(fmt)
        if self.sub is not None:  # the crop's own YUV frame, refilled for every frame
            self.small = av.VideoFrame(d.width, d.height, fmt)
            self.small_planes = planes_of(self.small)

    def _small(self, frame):
        d = self.d
        if self.sub is None:  # other layouts: through full-frame RGB (exact, slower)
            import av
            rgb = frame.to_ndarray(format="rgb24")
            return av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[d.top:d.top + d.height, d.left:d.left + d.width]), format="rgb24")
        src, dst = planes_of(frame), self.small_planes
        dst[0][:d.height, :d.width] = src[0][d.top:d.top + d.height, d.left:d.left + d.width]
        sx, sy = self.sub
        top, left = d.top >> sy, d.left >> sx
        h, w = -(-d.height >> sy), -(-d.width >> sx)  # the small frame's chroma: rounded up
        for i in (1, 2):
            dst[i][:h, :w] = src[i][top:top + h, left:left + w]
        self.small.colorspace, self.small.color_range = frame.colorspace, frame.color_range
        return self.small

    def convert(self, frame) -> np.ndarray:
        """uint8 [size, size, 3] of this view's crop of ``frame`` (not yet mirrored)."""
        out = self.scaler.reformat(self._small(frame), width=self.size[1], height=self.size[0], format="rgb24",
                                   interpolation=self.flag, threads=1)
        return out.to_ndarray()


def crop_views(frames: Iterable[tuple[int, object]], clips: Sequence[Sequence[int]], plan: Plan,
               outs: Sequence[torch.Tensor], scalers: list) -> tuple[int, int]:
    """Fill ``outs[v]`` (uint8 [T, S, S, 3]) with view v's crop of its frames ``clips[v]``
    from ``frames`` ((index, av.VideoFrame) of every index the clips name); ``plan(h, w)``
    draws the views' crops once the frame size is known. Returns (h, w)."""
    from av.video.reformatter import VideoReformatter

    slots: dict[int, list[tuple[int, int]]] = {}
    for v, idx in enumerate(clips):
        for k, i in enumerate(idx):
            slots.setdefault(int(i), []).append((v, k))
    views, hw, arrays = None, (0, 0), [o.numpy() for o in outs]
    for idx, frame in frames:
        if views is None:
            hw = (frame.height, frame.width)
            draws = plan(*hw)
            while len(scalers) < len(draws):
                scalers.append(VideoReformatter())
            views = [CropView(d, tuple(o.shape[1:3]), frame.format.name, s)
                     for d, o, s in zip(draws, outs, scalers)]
        elif (frame.height, frame.width) != hw or frame.format.name != views[0].fmt:
            raise ValueError(f"frame size or format changed within the video: {frame.width}x{frame.height} "
                             f"{frame.format.name} after {hw[1]}x{hw[0]} {views[0].fmt}")
        for v, k in slots.get(idx, ()):
            arrays[v][k] = views[v].convert(frame)
    if views is None:
        raise ValueError("video stream without frames")
    for view, out in zip(views, outs):
        if view.d.flip:
            out.copy_(out.flip(2))
    return hw
