"""Fixtures of ``tests/parity/test_import.py``: the official models' state_dict layouts
(key names, shapes, dtypes) and their outputs on fixed inputs with seeded weights.

Run once per official checkout, from the project root (CPU, one thread):

    python tests/parity/make_fixtures/import_checkpoints.py gdt    /path/to/GDT
    python tests/parity/make_fixtures/import_checkpoints.py selavi /path/to/selavi

(an optional third argument names the official commit when the folder is an exported
tree rather than a git checkout)

It imports the official ``model.py`` unmodified. What it never calls is stubbed: GDT's
video-text model reads a word2vec matrix and a dictionary from ``datasets/data`` at
construction (a 100-word stand-in is written to a temporary folder), and SeLaVi's
ResNet-9 calls torchvision's private ``_resnet`` with its pre-0.13 signature (a shim
with that signature builds the same ``ResNet(BasicBlock, [1, 1, 1, 1])``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "parity"))
from official_checkpoints import FIXTURES, inputs, state_dict  # noqa: E402

COMMIT = sys.argv[3] if len(sys.argv) > 3 else ""


def _entries(model: torch.nn.Module) -> list:
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]


def _loaded(model: torch.nn.Module) -> torch.nn.Module:
    """The model with the seeded weights (strict), in eval mode."""
    model.load_state_dict(state_dict(_entries(model)), strict=True)
    return model.eval()


def _write(name: str, model: torch.nn.Module, built: str, repo: Path, outs: dict) -> None:
    commit = COMMIT or subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                      text=True).stdout.strip() or "(unknown)"
    keys = {"layout": name, "official": {"repo": repo.name, "commit": commit, "model": built},
            "tensors": _entries(model)}
    (FIXTURES / f"import_{name}_keys.json").write_text(json.dumps(keys, separators=(",", ":")) + "\n")
    meta = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "threads": str(torch.get_num_threads())}
    save_file({k: v.contiguous() for k, v in outs.items()}, str(FIXTURES / f"import_{name}_outputs.safetensors"),
              metadata=meta)
    print(name, len(keys["tensors"]), "tensors;", {k: tuple(v.shape) for k, v in outs.items()})


@torch.no_grad()
def gdt(repo: Path) -> None:
    from model import GDT, TextVid_GDT
    x = inputs("gdt")
    av = _loaded(GDT(vid_base_arch="r2plus1d_18", aud_base_arch="resnet9", pretrained=False,
                     norm_feat=True, use_mlp=True, num_classes=256))
    v_emb, a_emb = av(x["video"], x["audio"])
    _write("gdt", av, "model.GDT(r2plus1d_18, resnet9, use_mlp=True, norm_feat=True, num_classes=256)", repo,
           {"video_feat": av.video_network(x["video"]), "video_emb": v_emb,
            "audio_feat": av.audio_network(x["audio"]), "audio_emb": a_emb})
    with tempfile.TemporaryDirectory() as tmp:  # Text_Encoder reads these relative paths
        data = Path(tmp) / "datasets" / "data"
        data.mkdir(parents=True)
        torch.save(torch.zeros(100, 300), data / "word2vec.pth")
        np.save(data / "dict.npy", np.array([f"w{i}" for i in range(99)]))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            vt = TextVid_GDT(vid_base_arch="r2plus1d_18", pretrained=False, norm_feat=True, use_mlp=True,
                             num_classes=256)
        finally:
            os.chdir(cwd)
    vt = _loaded(vt)
    feat = vt.video_network(x["video"])
    _write("gdt_text", vt, "model.TextVid_GDT(r2plus1d_18, use_mlp=True, norm_feat=True, num_classes=256); "
           "word2vec stand-in of 100 x 300", repo,
           {"video_feat": feat, "video_emb": F.normalize(vt.mlp_v(feat), p=2, dim=1)})


@torch.no_grad()
def selavi(repo: Path) -> None:
    import torchvision.models.resnet as tvr

    def _resnet_old_signature(arch, block, layers, pretrained, progress, **kwargs):
        return tvr.ResNet(block, layers, **kwargs)

    tvr._resnet = _resnet_old_signature
    from model import load_model
    x = inputs("selavi")
    # main.py: load_model(r2plus1d_18, resnet9, use_mlp=True, num_classes=mlp_dim, norm_feat=False,
    # headcount); the VGG-Sound model: 309 clusters, 10 heads
    net = _loaded(load_model(vid_base_arch="r2plus1d_18", aud_base_arch="resnet9", pretrained=False,
                             norm_feat=False, use_mlp=True, headcount=10, num_classes=309))
    v_heads, a_heads = net(x["video"], x["audio"])
    outs = {"video_feat": net.video_network(x["video"]), "audio_feat": net.audio_network(x["audio"])}
    for h in (0, 9):
        outs[f"video_emb_head{h}"], outs[f"audio_emb_head{h}"] = v_heads[h], a_heads[h]
    _write("selavi", net, "model.load_model(r2plus1d_18, resnet9, use_mlp=True, norm_feat=False, "
           "headcount=10, num_classes=309)", repo, outs)


if __name__ == "__main__":
    which, repo = sys.argv[1], Path(sys.argv[2]).resolve()
    torch.set_num_threads(1)
    sys.path.insert(0, str(repo))
    {"gdt": gdt, "selavi": selavi}[which](repo)
