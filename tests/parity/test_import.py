"""``python -m pipeline import``: a checkpoint in each official layout (the official
model's key names and shapes, seeded weights: ``official_checkpoints.py``) becomes an
export whose backbones and heads give the official model's outputs on the fixed inputs
(fixtures made by running the official code, see README.md "Published checkpoints").

Exactly equal (max difference 0, float32, CPU, one thread) on the machine class the
fixtures were made on (same torch version and CPU capability, recorded in the fixture);
elsewhere convolution kernels may round differently, so the bound there is 1e-4 of the
output's scale, still far below what a wrong key mapping gives (order 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from official_checkpoints import FIXTURES, fill, inputs, save_official  # noqa: E402

from pipeline.cli import main  # noqa: E402
from pipeline.models.load import load_backbone  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _reference(name: str) -> tuple[dict[str, torch.Tensor], bool]:
    path = FIXTURES / f"import_{name}_outputs.safetensors"
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    same = meta["torch"] == torch.__version__ and meta["cpu"] == torch.backends.cpu.get_cpu_capability()
    return load_file(path), same


def _assert_equal(got: torch.Tensor, want: torch.Tensor, exact: bool, what: str) -> None:
    assert got.shape == want.shape, what
    diff = (got - want).abs().max().item()
    bound = 0.0 if exact else 1e-4 * max(1.0, want.abs().max().item())
    assert diff <= bound, f"{what}: max difference {diff} (bound {bound})"


def _import(ckpt: Path, out: Path, *extra: str, capsys=None) -> tuple[int, str]:
    rc = main(["import", str(ckpt), f"out={out}", "--quiet", *extra])
    err = capsys.readouterr().err if capsys is not None else ""
    return rc, err


@pytest.mark.parametrize("layout,legacy", [("gdt", True), ("gdt_text", False)])
def test_gdt_checkpoint_gives_the_official_embeddings(tmp_path, layout, legacy):
    ckpt = tmp_path / f"{layout}.pth"
    save_official(layout, ckpt, legacy=legacy)  # legacy: the pre-1.6 format of the published files
    assert _import(ckpt, tmp_path / "export")[0] == 0
    ref, exact = _reference(layout)
    x = inputs("gdt")
    mods = ["video", "audio"] if layout == "gdt" else ["video"]
    assert sorted(p.name for p in (tmp_path / "export").iterdir() if p.is_dir()) == sorted(mods)
    with torch.no_grad():
        for m in mods:
            net = load_backbone(tmp_path / "export" / m, with_head=True)
            feat = net.backbone(x[m])
            _assert_equal(feat, ref[f"{m}_feat"], exact, f"{layout} {m} backbone")
            _assert_equal(net.head(feat), ref[f"{m}_emb"], exact, f"{layout} {m} embedding")
    spec = json.loads((tmp_path / "export" / "video" / "config.json").read_text())
    assert spec["import"]["layout"] == layout and spec["input"]["frames"] == 30
    assert spec["input"]["stride"] == (2 if layout == "gdt_text" else 1)
    if layout == "gdt_text":
        assert {"text_network.", "mlp_t."} <= set(spec["import"]["dropped"])
    else:
        assert "audio_network.base.fc." in spec["import"]["dropped"]


def test_selavi_checkpoint_gives_the_official_head_outputs(tmp_path, capsys):
    ckpt = tmp_path / "selavi.pth"
    save_official("selavi", ckpt)
    ref, exact = _reference("selavi")
    x = inputs("selavi")
    for head in (0, 9):
        out = tmp_path / f"export{head}"
        assert _import(ckpt, out, f"head={head}")[0] == 0
        with torch.no_grad():
            for m in ("video", "audio"):
                net = load_backbone(out / m, with_head=True)
                feat = net.backbone(x[m])
                _assert_equal(feat, ref[f"{m}_feat"], exact, f"selavi {m} backbone")
                _assert_equal(net.head(feat), ref[f"{m}_emb_head{head}"], exact, f"selavi {m} head {head}")
    rc, err = _import(ckpt, tmp_path / "export10", "head=10", capsys=capsys)
    assert rc == 1 and "head=10" in err and "10 heads" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "export10").exists()


def test_torchvision_r2plus1d_18_equals_torchvision(tmp_path):
    from torchvision.models.video import r2plus1d_18
    ref = r2plus1d_18()
    ref.load_state_dict({k: fill(k, list(v.shape), str(v.dtype)[6:]) for k, v in ref.state_dict().items()})
    torch.save(ref.state_dict(), tmp_path / "r2plus1d_18.pth")
    assert _import(tmp_path / "r2plus1d_18.pth", tmp_path / "export")[0] == 0
    ref.fc = torch.nn.Identity()
    x = inputs(None)["video"]
    with torch.no_grad():
        _assert_equal(load_backbone(tmp_path / "export" / "video")(x), ref.eval()(x), True, "torchvision features")
    spec = json.loads((tmp_path / "export" / "video" / "config.json").read_text())
    assert "head" not in spec and spec["import"]["dropped"] == {"fc.": "the 400-way Kinetics classifier"}
    assert spec["input"]["mean"] == pytest.approx([0.43216, 0.394666, 0.37645])
    from pipeline.eval.features import _with_head  # eval's features of a headless export
    net = _with_head(tmp_path / "export" / "video", True, "cpu")
    with torch.no_grad():
        assert torch.equal(net.head(net.backbone(x)), net.backbone(x))


def test_other_depths_are_read_from_the_keys(tmp_path):
    """A torchvision-layout R(2+1)D with one block per stage imports as r2plus1d_18 with
    ``blocks: [1, 1, 1, 1]`` (the same rule gives R(2+1)D-34 its 3-4-6-3)."""
    from torchvision.models.video import r2plus1d_18
    state = {k: fill(k, list(v.shape), str(v.dtype)[6:]) for k, v in r2plus1d_18().state_dict().items()
             if not any(k.startswith(f"layer{i}.1.") for i in range(1, 5))}
    torch.save(state, tmp_path / "shallow.pth")
    assert _import(tmp_path / "shallow.pth", tmp_path / "export")[0] == 0
    spec = json.loads((tmp_path / "export" / "video" / "config.json").read_text())
    assert spec["args"] == {"blocks": [1, 1, 1, 1]}
    net = load_backbone(tmp_path / "export" / "video")
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for k, v in state.items()
                                                            if k.endswith(("weight", "bias")) and "fc." not in k)


class Opaque:
    """Pickles as a call to ``os.mkdir``: reading it must not run it."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_pickled_code_is_refused_without_running_it(tmp_path, capsys):
    ckpt, marker = tmp_path / "code.pth", tmp_path / "ran"
    torch.save({"model": {"stem.0.weight": torch.zeros(1)}, "hook": Opaque(marker)}, ckpt)
    rc, err = _import(ckpt, tmp_path / "export", capsys=capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert str(ckpt) in err and "weights_only=True" in err and "mkdir" in err
    assert not marker.exists() and not (tmp_path / "export").exists()

    # a full training checkpoint: GDT's scheduler state holds a pickled MultiStepLR object
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    full = {"model": {"stem.0.weight": torch.zeros(1)},
            "lr_scheduler": {"after_scheduler": torch.optim.lr_scheduler.MultiStepLR(opt, [10])}}
    torch.save(full, tmp_path / "full.pth", _use_new_zipfile_serialization=False)
    rc, err = _import(tmp_path / "full.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "MultiStepLR" in err and "full.weights.pth" in err


def test_unknown_layout_and_stray_keys_are_refused(tmp_path, capsys):
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2, 2)}, "epoch": 3}, tmp_path / "other.pth")
    rc, err = _import(tmp_path / "other.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "no known layout" in err and "encoder.weight" in err
    assert len(err.strip().splitlines()) == 1

    torch.save({"model": {"video_network.base.stem.0.weight": torch.zeros(45, 3, 1, 7, 7)},
                "args": argparse.Namespace(x=1)}, tmp_path / "partial.pth")
    rc, err = _import(tmp_path / "partial.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "no known layout" in err

    torch.save([1, 2, 3], tmp_path / "list.pth")
    rc, err = _import(tmp_path / "list.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "no state dict of tensors" in err

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    rc, err = _import(tmp_path / "junk.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "not a readable PyTorch checkpoint" in err
    assert not (tmp_path / "export").exists()


def test_stray_key_is_named_and_an_existing_export_is_replaced_whole(tmp_path, capsys):
    spec = json.loads((FIXTURES / "import_gdt_keys.json").read_text())
    state = {k: fill(k, s, d) for k, s, d in spec["tensors"]}
    torch.save({"model": {**state, "video_pooling.1.weight": torch.zeros(3)}}, tmp_path / "stica.pth")
    rc, err = _import(tmp_path / "stica.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "video_pooling.1.weight" in err and len(err.strip().splitlines()) == 1

    state["audio_network.base.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save({"model": state}, tmp_path / "bad_shape.pth")
    rc, err = _import(tmp_path / "bad_shape.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "'layer1.0.conv1.weight'" in err and "(64, 64, 1, 1)" in err

    del state["audio_network.base.layer1.0.conv1.weight"]  # a layout that imports, audio part only
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("video_network")}},
               tmp_path / "audio_only.pth")
    rc, err = _import(tmp_path / "audio_only.pth", tmp_path / "export", capsys=capsys)
    assert rc == 1 and "no known layout" in err

    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("mine")
    save_official("gdt_text", tmp_path / "vt.pth")
    rc, err = _import(tmp_path / "vt.pth", other, capsys=capsys)
    assert rc == 1 and "not an export folder" in err and (other / "a.txt").read_text() == "mine"

    out = tmp_path / "export"
    assert _import(tmp_path / "vt.pth", out)[0] == 0
    first = (out / "video" / "backbone.safetensors").stat().st_ino
    assert _import(tmp_path / "vt.pth", out)[0] == 0
    assert (out / "video" / "backbone.safetensors").stat().st_ino != first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_help_lists_the_settings(capsys):
    assert main(["import", "--help"]) == 0
    text = capsys.readouterr().out
    assert "checkpoint (str, REQUIRED)" in text and "head (int, 0)" in text and "weights_only" in text


@pytest.mark.parametrize("layout,features,n_mels", [("gdt", "gdt", 40), ("selavi", "selavi", 257)])
def test_eval_gives_an_imported_audio_tower_its_official_features(tmp_path, synth_shards, layout, features, n_mels):
    """``eval`` builds its loader from the export's input spec: an imported audio tower must
    get the features its network was trained on, not the log-mel default of older exports."""
    from pipeline.eval.features import loader_for
    save_official(layout, tmp_path / "ckpt.pth")
    assert _import(tmp_path / "ckpt.pth", tmp_path / "export")[0] == 0
    audio = loader_for(tmp_path / "export", str(synth_shards), 4, 0).cfg.audio
    assert (audio.features, audio.n_mels, audio.rate) == (features, n_mels, 24000)
