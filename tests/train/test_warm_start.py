"""Warm start (``init=RUN``): backbones carry over between methods, heads stay fresh, and
a wrong source is one clear error."""
import pytest
import torch

from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method
from pipeline.train.warm_start import warm_start

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "tensorboard=false"]
SECTION = {"selavi": ["selavi.clusters=4", "selavi.heads=2"]}  # a run config holds only its method's sections


def _method(tmp_path, name: str, seed: int):
    return build_method(load_config(TrainConfig, [], [f"out={tmp_path}", f"method={name}", f"seed={seed}", *TINY,
                                                      *SECTION.get(name, [])]))


def test_gdt_backbones_initialise_selavi(tmp_path):
    torch.manual_seed(1)
    gdt = _method(tmp_path, "gdt", 1)
    run = tmp_path / "gdt_run"
    gdt.export_weights(final_weights(run))
    torch.manual_seed(2)
    selavi = _method(tmp_path, "selavi", 2)
    heads_before = {k: v.clone() for k, v in selavi.state_dict().items() if "heads" in k and torch.is_tensor(v)}
    n = warm_start(selavi, str(run), "model.backbones.")
    ours, theirs = selavi.state_dict(), gdt.state_dict()
    backbone = [k for k in theirs if k.startswith("model.backbones.")]
    assert n == len(backbone) > 50
    assert all(torch.equal(ours[k], theirs[k]) for k in backbone)
    assert all(torch.equal(ours[k], v) for k, v in heads_before.items())


def test_bad_sources_are_clear_errors(tmp_path):
    method = _method(tmp_path, "gdt", 0)
    with pytest.raises(InputError, match="no weights"):
        warm_start(method, str(tmp_path / "missing_run"), "model.backbones.")
    method.export_weights(final_weights(tmp_path / "run"))
    with pytest.raises(InputError, match="no tensor"):
        warm_start(method, str(tmp_path / "run"), "model.nothing.")


def test_gdt_audio_initialises_avloc_under_another_name(tmp_path):
    """init_prefix=model.backbones.audio. init_as=audio.: the detect stage's AV model starts
    its audio net from GDT's (avloc names it ``audio.``); its frame net and heads stay fresh."""
    torch.manual_seed(1)
    gdt = _method(tmp_path, "gdt", 1)
    run = tmp_path / "gdt_run"
    gdt.export_weights(final_weights(run))
    torch.manual_seed(2)
    av = build_method(load_config(TrainConfig, [], [f"out={tmp_path}", "method=avloc", *TINY[2:5],
                                                    "avloc.frame_widths=[8, 16]", "avloc.clusters=3"]))
    fresh = {k: v.clone() for k, v in av.state_dict().items() if not k.startswith("audio.")}
    n = warm_start(av, str(run), "model.backbones.audio.", "audio.")
    ours, theirs = av.state_dict(), gdt.state_dict()
    audio = [k for k in theirs if k.startswith("model.backbones.audio.")]
    assert n == len(audio) > 10
    assert all(torch.equal(ours["audio." + k[len("model.backbones.audio."):]], theirs[k]) for k in audio)
    assert all(torch.equal(ours[k], v) for k, v in fresh.items())
