"""Measure what the official GDT colour jitter does to a real clip (no fixture: prints).

    python tests/parity/make_fixtures/gdt_colour_jitter.py --gdt /path/to/GDT \
        --video ../shared/media/video/lego_toy.mp4

``GDTPretrainDataset.augmentation`` hands ``color_jitter(frames, 0.4, 0.4, 0.4)`` (from
``datasets/video_transforms.py``, imported unmodified; its unused ``kornia`` import is
stubbed) frames laid out C x T x H x W. For three draws this fits out = a * in + b per
channel by least squares, separately on frames 3-29 and 0-2, and compares how much the
chroma and the luma were scaled: an exact fit with one gain for all channels and equal
chroma / luma scaling means the jitter acted as a brightness gain only.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import av
import numpy as np
import torch

# the real videos beside the checkout (../shared/media, with their licences), wherever it is cloned
MEDIA = Path(__file__).resolve().parents[3].parent / "shared" / "media" / "video"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gdt", type=Path, required=True)
    ap.add_argument("--video", type=Path, default=MEDIA / "lego_toy.mp4")
    args = ap.parse_args()
    sys.modules["kornia"] = types.ModuleType("kornia")
    spec = importlib.util.spec_from_file_location("gdt_vt", args.gdt / "datasets" / "video_transforms.py")
    vt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vt)
    with av.open(str(args.video)) as c:
        fr = np.stack([f.to_rgb().to_ndarray() for _, f in zip(range(30), c.decode(video=0))])
    x = torch.as_tensor(fr).float().div(255).permute(3, 0, 1, 2)  # C T H W, as the dataset passes it
    np.random.seed(0)
    luma = lambda z: 0.299 * z[0] + 0.587 * z[1] + 0.114 * z[2]  # noqa: E731
    for trial in range(3):
        y = vt.color_jitter(x.clone(), 0.4, 0.4, 0.4)
        for name, sl in (("frames 3-29", slice(3, None)), ("frames 0-2", slice(0, 3))):
            fits = []
            for ch in range(3):
                xs, ys = x[ch, sl].flatten().double(), y[ch, sl].flatten().double()
                a = torch.stack([xs, torch.ones_like(xs)], 1)
                sol = torch.linalg.lstsq(a, ys[:, None]).solution[:, 0]
                fits.append((round(sol[0].item(), 4), round(sol[1].item(), 4),
                             f"max residual {(a @ sol - ys).abs().max().item():.1e}"))
            print(trial, name, "per channel (gain, offset, residual):", fits)
        cx, cy = (x - luma(x))[:, 3:], (y - luma(y))[:, 3:]
        print(f"  frames 3-29: chroma scaled x{(cy.norm() / cx.norm()).item():.4f}, "
              f"luma x{(luma(y)[3:].norm() / luma(x)[3:].norm()).item():.4f}")


if __name__ == "__main__":
    main()
