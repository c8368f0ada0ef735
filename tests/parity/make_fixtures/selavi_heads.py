"""Make the head fixtures from the official code: SeLaVi's clustering heads (K = 309, 10
heads) and GDT's projection head with its dropout.

    python tests/parity/make_fixtures/selavi_heads.py --selavi /path/to/selavi --gdt /path/to/GDT \
        --out tests/parity/fixtures

``--selavi`` / ``--gdt``: checkouts of facebookresearch/selavi (33d2b2d) and
facebookresearch/GDT (873e630). Only their ``model.py`` is imported (SeLaVi's AVModel
with its backbone builders replaced by stand-ins that hold no weights, since only the heads
are under test; GDT's ``MLP``). Weights are filled by ``seeded_state`` (the test repeats
it), so the fixtures hold key names, shapes, inputs and outputs, not weights.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

K, HEADS, BATCH, SEED, DROP_SEED = 309, 10, 3, 0, 7


def seeded_state(spec: list[tuple[str, list[int]]], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for the listed (key, shape) in order: running_var U(0.5, 1.5),
    num_batches_tracked 0, everything else N(0, 0.05^2), from one generator."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in spec:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(shape, generator=gen) * 0.05
    return out


def _load(name: str, root: Path):
    sys.path.insert(0, str(root))
    try:
        spec = importlib.util.spec_from_file_location(name, root / "model.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(root))
    return mod


def selavi(root: Path, out: Path) -> None:
    off = _load("selavi_model", root)
    off.VideoBaseNetwork = lambda *a, **k: nn.Identity()  # backbones are not under test
    off.AudioBaseNetwork = lambda *a, **k: nn.Identity()
    # the public pretraining script: use_mlp True, mlp_dim = K, norm_feat False
    model = off.AVModel(use_mlp=True, headcount=HEADS, num_classes=K, norm_feat=False)
    state = model.state_dict()
    spec = [(k, list(v.shape)) for k, v in state.items()]
    model.load_state_dict(seeded_state(spec, SEED), strict=True)
    gen = torch.Generator().manual_seed(1)
    feats = {m: torch.randn(BATCH, 512, generator=gen) for m in ("video", "audio")}
    tensors = {f"input_{m}": x for m, x in feats.items()}
    model.eval()
    with torch.no_grad():
        outs_v, outs_a = model.forward(feats["video"], feats["audio"])  # lists over heads
    tensors["eval_video"] = torch.stack(outs_v, 1).contiguous()  # [B, h, K]
    tensors["eval_audio"] = torch.stack(outs_a, 1).contiguous()
    model.train()  # head 0 alone, dropout masks from the global RNG seeded right before
    with torch.no_grad():
        for m, tag in (("video", "v"), ("audio", "a")):
            torch.manual_seed(DROP_SEED)
            tensors[f"train_{m}_head0"] = getattr(model, f"mlp_{tag}0")(feats[m].clone()).contiguous()
    params = {m: sum(v.numel() for k, v in model.named_parameters() if k.startswith(f"mlp_{t}"))
              for m, t in (("video", "v"), ("audio", "a"))}
    save_file(tensors, str(out / "selavi_heads.safetensors"))
    (out / "selavi_heads.json").write_text(json.dumps({
        "official": "facebookresearch/selavi 33d2b2d model.py AVModel(use_mlp=True, headcount=10, "
                    "num_classes=309, norm_feat=False)",
        "clusters": K, "heads": HEADS, "seed": SEED, "dropout_seed": DROP_SEED,
        "parameters_per_modality": params, "keys": spec}, indent=1))


def gdt(root: Path, out: Path) -> None:
    off = _load("gdt_model", root)
    head = off.MLP(512, 256)  # as GDT(use_mlp=True) builds mlp_a (mlp_v: n_hidden=512, the same)
    spec = [(k, list(v.shape)) for k, v in head.state_dict().items()]
    head.load_state_dict(seeded_state(spec, SEED), strict=True)
    x = torch.randn(4, 512, generator=torch.Generator().manual_seed(2))
    tensors = {"input": x}
    with torch.no_grad():
        head.eval()  # GDT.forward L2-normalises the head output (norm_feat=True)
        tensors["eval"] = nn.functional.normalize(head(x.clone()), p=2, dim=1)
        head.train()
        torch.manual_seed(DROP_SEED)
        tensors["train"] = nn.functional.normalize(head(x.clone()), p=2, dim=1)
    save_file(tensors, str(out / "gdt_head_dropout.safetensors"))
    (out / "gdt_head_dropout.json").write_text(json.dumps({
        "official": "facebookresearch/GDT 873e630 model.py MLP(512, 256) (p = 0.3), F.normalize",
        "seed": SEED, "dropout_seed": DROP_SEED,
        "dropout": [m.p for m in head.modules() if isinstance(m, nn.Dropout)], "keys": spec}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selavi", type=Path, required=True)
    ap.add_argument("--gdt", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "fixtures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    selavi(args.selavi, args.out)
    gdt(args.gdt, args.out)


if __name__ == "__main__":
    main()
