"""The heads beside the official code (fixtures: tests/parity/README.md, "SeLaVi heads").

SeLaVi: ``selavi.head=official_mlp`` builds the official model's clustering heads; an
official state_dict's head keys map 1:1 onto them, strictly, and the outputs equal the
official ones on the same input (eval; and in training with the same dropout seed).
GDT: ``model.head_dropout`` gives the official projection head's Dropout 0.3; in eval mode
the head equals the official one, in training the dropout is active and, drawing from
the same seed, gives the official head's output.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import CONFIGS, load_config
from pipeline.models.cluster_heads import MLPClusterHeads, load_official_heads, official_key_map
from pipeline.models.heads import ProjectionHead
from pipeline.train.config import TrainConfig
from pipeline.train.methods import build_method

FIX = Path(__file__).parent / "fixtures"
TOL = 1e-6


def seeded_state(spec, seed):
    """The generator's weights (tests/parity/make_fixtures/selavi_heads.py, same rule)."""
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


@pytest.fixture(scope="module")
def selavi_fixture():
    meta = json.loads((FIX / "selavi_heads.json").read_text())
    return meta, load_file(str(FIX / "selavi_heads.safetensors"))


def _official_heads(meta):
    k, h = meta["clusters"], meta["heads"]
    video, audio = MLPClusterHeads(512, h, k), MLPClusterHeads(512, h, k)
    load_official_heads(seeded_state(meta["keys"], meta["seed"]), video, audio)
    return video, audio


def test_official_keys_map_one_to_one_with_equal_shapes(selavi_fixture):
    meta, _ = selavi_fixture
    ours = {f"{m}.{k}": v.shape for m, heads in zip(("video", "audio"), _official_heads(meta))
            for k, v in heads.state_dict().items()}
    mapped = {official_key_map(k): tuple(s) for k, s in meta["keys"]}
    assert None not in mapped and len(mapped) == len(meta["keys"]) == len(ours)
    assert {k: tuple(s) for k, s in ours.items()} == mapped
    assert official_key_map("module.mlp_a7.block_forward.8.bias") == "audio.mlps.7.5.bias"
    assert official_key_map("video_network.base.fc.weight") is None


def test_parameter_counts_of_both_forms_at_k309():
    """The selavi method at K = 309, 10 heads: official 4,216,850 per modality, linear 1,585,170."""
    meta = json.loads((FIX / "selavi_heads.json").read_text())
    for form, want in (("official_mlp", meta["parameters_per_modality"]["video"]), ("linear", 512 * 3090 + 3090)):
        cfg = load_config(TrainConfig, [], ["out=o", "method=selavi", "selavi.clusters=309", "selavi.heads=10",
                                            f"selavi.head={form}", "model.video.name=r3d_tiny",
                                            "model.video.args={widths: [8, 16, 32, 512]}",
                                            "model.audio.name=resnet_tiny",
                                            "model.audio.args={widths: [8, 16, 32, 512]}"])
        method = build_method(cfg)
        for heads in (method.video_heads, method.audio_heads):
            assert sum(p.numel() for p in heads.parameters()) == want, form
    assert meta["parameters_per_modality"] == {"video": 4216850, "audio": 4216850}


def test_outputs_equal_the_official_heads_in_eval_mode(selavi_fixture):
    meta, t = selavi_fixture
    for mod, heads in zip(("video", "audio"), _official_heads(meta)):
        heads.eval()
        with torch.no_grad():
            got = heads(t[f"input_{mod}"])
        assert got.shape == t[f"eval_{mod}"].shape == (3, meta["heads"], meta["clusters"])
        assert (got - t[f"eval_{mod}"]).abs().max() < TOL, mod


def test_training_mode_dropout_draws_as_the_official_head(selavi_fixture):
    meta, t = selavi_fixture
    for mod, heads in zip(("video", "audio"), _official_heads(meta)):
        head0 = heads.mlps[0].train()
        assert [m.p for m in head0 if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
        torch.manual_seed(meta["dropout_seed"])
        with torch.no_grad():
            got = head0(t[f"input_{mod}"].clone())
        assert (got - t[f"train_{mod}_head0"]).abs().max() < TOL, mod
        with torch.no_grad():  # another seed, other masks: the dropout is live
            torch.manual_seed(meta["dropout_seed"] + 1)
            assert (head0(t[f"input_{mod}"].clone()) - got).abs().max() > 1e-3


def _gdt_head(dropout: float) -> ProjectionHead:
    """ProjectionHead with the official MLP's seeded weights (1:1 key mapping, zero bias)."""
    meta = json.loads((FIX / "gdt_head_dropout.json").read_text())
    w = seeded_state(meta["keys"], meta["seed"])
    head = ProjectionHead(512, 256, 512, normalize=True, dropout=dropout)
    mapping = {"net.0.weight": "block_forward.2.weight", "net.3.weight": "block_forward.8.weight",
               "net.3.bias": "block_forward.8.bias"}
    state = {k: w[mapping[k]] if k in mapping else w[k.replace("net.1.", "block_forward.4.")]
             if k.startswith("net.1.") else torch.zeros_like(v) for k, v in head.state_dict().items()}
    head.load_state_dict(state, strict=True)
    return head


def test_gdt_recipe_uses_the_official_dropout():
    cfg = load_config(TrainConfig, [CONFIGS / "gdt_k400.yaml"], ["out=o"])
    assert cfg.model.head_dropout == 0.3
    meta = json.loads((FIX / "gdt_head_dropout.json").read_text())
    assert meta["dropout"] == [0.3, 0.3]
    method = build_method(load_config(TrainConfig, [CONFIGS / "gdt_k400.yaml"],
                                      ["out=o", "model.video.name=r3d_tiny", "model.audio.name=resnet_tiny"]))
    heads = [m for m in method.modules() if isinstance(m, ProjectionHead)]
    assert heads and all(h.dropout == 0.3 for h in heads)


def test_gdt_head_eval_equals_official_and_training_dropout_is_active():
    t = load_file(str(FIX / "gdt_head_dropout.safetensors"))
    meta = json.loads((FIX / "gdt_head_dropout.json").read_text())
    head = _gdt_head(0.3).eval()
    with torch.no_grad():
        assert (head(t["input"]) - t["eval"]).abs().max() < TOL
        head.train()
        torch.manual_seed(meta["dropout_seed"])
        train_out = head(t["input"].clone())
        assert (train_out - t["train"]).abs().max() < TOL
        assert (train_out - t["eval"]).abs().max() > 1e-2  # the dropout changed the output
        plain = _gdt_head(0.0).train()  # without dropout training mode gives another output
        assert (plain(t["input"].clone()) - t["train"]).abs().max() > 1e-2
    # the rate: the inputs of both Linears, seen in training, are zero at ~30 % of entries
    seen = []
    hooks = [head.net[i].register_forward_pre_hook(lambda m, a: seen.append(a[0])) for i in (0, 3)]
    torch.manual_seed(0)
    with torch.no_grad():
        head.train()(torch.ones(256, 512))
    for h in hooks:
        h.remove()
    zero_in, zero_hidden = ((s == 0).float().mean().item() for s in seen)
    assert abs(zero_in - 0.3) < 0.01
    assert zero_hidden > 0.3 + 0.1  # the dropout's 30 % on top of the ReLU's zeros
