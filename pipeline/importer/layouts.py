"""The published checkpoints' layouts and how each maps onto the project's modules.

Why a table of prefixes: the official GDT and SeLaVi models wrap torchvision-style
backbones (``video_network.base.*``: R(2+1)D-18, ``audio_network.base.*``: ResNet-9) whose
keys are the project's own once the prefix is gone, and projection MLPs
(``mlp_v.block_forward.{2,4,8}``: Linear without bias, BatchNorm, Linear) that are the
project's ``ProjectionHead`` (Linear, BatchNorm, ReLU, Linear) in eval mode with a zero
first bias. So a mapping is a rename; every key of a checkpoint is either renamed, or
dropped on purpose (listed with the reason), or refused with an error naming it.

Layouts (detected from the keys, see ``detect``):
- ``gdt``: GDT audio-visual (``model.GDT``; K400, and IG65M when audio-visual) or a
  one-head SeLaVi model (same keys);
- ``gdt_text``: GDT video-text (``model.TextVid_GDT``, HowTo100M): video tower and head;
  the word2vec text encoder (``text_network.*``, ``mlp_t.*``) has no project counterpart
  and is dropped;
- ``selavi``: SeLaVi with several clustering heads (``mlp_v0..``, ``mlp_a0..``): the
  backbones and one chosen head per modality (its cluster logits, not normalised);
- ``torchvision``: ``torchvision.models.video.r2plus1d_18``'s state dict (supervised
  Kinetics-400): the video backbone; its 400-way classifier ``fc.*`` is dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

GDT_VIDEO = {"frames": 30, "stride": 1, "fps": 30, "size": 112, "mean": [0.45] * 3, "std": [0.225] * 3}
# ``audio_features`` is the key ``eval`` reads (``loader.audio.features``, as ``export`` writes
# it); ``features`` is the description for a reader.
GDT_AUDIO = {"rate": 24000, "seconds": 1.0, "n_mels": 40, "win_ms": 20.0, "hop_ms": 10.0, "audio_features": "gdt",
             "features": "GDT aud_spec_type=1: python_speech_features logfbank, 40 filters, nfft 1024, "
                         "20/10 ms, 99 frames per second, z-normalised (x - 1.93) / 17.89"}
SELAVI_AUDIO = {"rate": 24000, "seconds": 1.0, "n_mels": 257, "win_ms": 20.0, "hop_ms": 10.0,
                "audio_features": "selavi",
                "features": "SeLaVi aud_spec_type=2: python_speech_features logfbank, 257 filters, nfft "
                            "1024, 20/10 ms, 99 frames per second, not normalised"}
VIDEO_NOTE = {"layout": "B,C,T,H,W", "value_range": "RGB in [0,1], then (x - mean) / std"}
AUDIO_NOTE = {"layout": "B,1,n_mels,frames"}

_HEAD = re.compile(r"^mlp_([vat])(\d*)\.")


@dataclass
class Tower:
    """One exported modality: backbone (project keys), optional head (ProjectionHead keys);
    ``args`` overrides the preset's block counts when the checkpoint has other depths
    (R(2+1)D-34: 3-4-6-3, ResNet-18 audio: 2-2-2-2), read from its ``layer<i>.<j>`` keys."""
    kind: str
    name: str
    backbone: dict[str, torch.Tensor]
    input: dict
    head: dict[str, torch.Tensor] | None = None
    normalize: bool = True
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from pipeline.models.registry import FAMILIES
        found = [len({k.split(".")[1] for k in self.backbone if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
        if all(found) and found != list(FAMILIES[self.kind].presets[self.name].blocks):
            self.args = {"blocks": found}


@dataclass
class Mapped:
    layout: str
    method: str
    towers: list[Tower]
    dropped: dict[str, str] = field(default_factory=dict)  # key prefix -> why


class LayoutError(ValueError):
    """A checkpoint whose keys this module cannot map; the message names the key."""


def strip_module(state: dict) -> dict:
    """Remove DistributedDataParallel's ``module.`` prefix (SeLaVi saves the wrapper)."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def take(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def detect(state: dict) -> str:
    """The layout name of a (``module.``-stripped) state dict; LayoutError if none fits."""
    keys = set(state)
    if any(k.startswith("video_network.base.") for k in keys):
        heads = {m.group(1) + m.group(2) for m in map(_HEAD.match, keys) if m}
        if any(k.startswith("text_network.") for k in keys):
            return "gdt_text"
        if "v0" in heads:
            return "selavi"
        if any(k.startswith("audio_network.base.") for k in keys):
            return "gdt"
    if "stem.0.weight" in keys and "layer1.0.conv1.0.0.weight" in keys:
        return "torchvision"
    shown = ", ".join(sorted(keys)[:4]) + (", ..." if len(keys) > 4 else "")
    raise LayoutError(f"no known layout: {len(keys)} tensors ({shown}); this version imports GDT "
                      "(video_network.base.*, audio_network.base.*, mlp_v.*), GDT video-text "
                      "(+ text_network.*), SeLaVi (mlp_v0.*, ...) and torchvision's r2plus1d_18 "
                      "(stem.*, layer1.*, ...)")


def mlp_head(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    """GDT / SeLaVi ``MLP``/``MLPv2`` (``block_forward``: 2 = Linear without bias, 4 =
    BatchNorm1d, 8 = Linear) as ``ProjectionHead`` keys (net.0 / net.1 / net.3)."""
    sub = take(state, prefix)
    if "weight" in sub:
        raise LayoutError(f"{prefix}weight: a single-Linear projection (use_mlp=False) has no counterpart in "
                          "the project's heads (Linear, BatchNorm, ReLU, Linear)")
    rename = {"block_forward.2.": "net.0.", "block_forward.4.": "net.1.", "block_forward.8.": "net.3."}
    out = {}
    for key, value in sub.items():
        for old, new in rename.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise LayoutError(f"{prefix}{key}: not part of GDT's / SeLaVi's MLP head (block_forward.2, .4, .8)")
    if "net.0.weight" not in out:
        raise LayoutError(f"{prefix}block_forward.2.weight: missing")
    out.setdefault("net.0.bias", torch.zeros(out["net.0.weight"].shape[0], dtype=out["net.0.weight"].dtype))
    out.setdefault("net.1.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


def _video(state: dict, prefix: str, spec: dict) -> Tower:
    return Tower("video", "r2plus1d_18", {k: v for k, v in take(state, prefix).items() if not k.startswith("fc.")},
                 {**spec, **VIDEO_NOTE})


def _audio(state: dict, prefix: str, spec: dict) -> Tower:
    return Tower("audio", "resnet9", {k: v for k, v in take(state, prefix).items() if not k.startswith("fc.")},
                 {**spec, **AUDIO_NOTE})


def _torchvision_video() -> dict:
    """The clip torchvision's Kinetics-400 weights were evaluated on (its weights' docs:
    16 frames at 15 fps, 112 px crops) and their pixel statistics."""
    from torchvision.models.video import R2Plus1D_18_Weights
    t = R2Plus1D_18_Weights.KINETICS400_V1.transforms()
    return {"frames": 16, "stride": 2, "fps": 30, "size": int(t.crop_size[0]), "mean": list(t.mean),
            "std": list(t.std), **VIDEO_NOTE}


def map_state(state: dict, head: int = 0) -> Mapped:
    """Rename ``state`` (``module.`` already stripped) to the project's towers; every key is
    used or dropped with a reason, else LayoutError naming it. ``head``: SeLaVi's head."""
    layout = detect(state)
    if layout == "torchvision":
        video = Tower("video", "r2plus1d_18", {k: v for k, v in state.items() if not k.startswith("fc.")},
                      _torchvision_video())
        mapped = Mapped(layout, "supervised (torchvision r2plus1d_18, Kinetics-400)", [video],
                        {"fc.": "the 400-way Kinetics classifier"})
    elif layout == "selavi":
        n = len({m.group(2) for m in map(_HEAD.match, state) if m and m.group(1) == "v"})
        if head >= n:
            raise LayoutError(f"head={head}: the checkpoint has {n} heads (mlp_v0 .. mlp_v{n - 1})")
        video, audio = _video(state, "video_network.base.", GDT_VIDEO), _audio(state, "audio_network.base.",
                                                                                SELAVI_AUDIO)
        video.head, audio.head = mlp_head(state, f"mlp_v{head}."), mlp_head(state, f"mlp_a{head}.")
        video.normalize = audio.normalize = False
        others = {f"mlp_{m}{i}.": f"SeLaVi clustering head {i} (head={head} is exported)"
                  for m in "va" for i in range(n) if i != head}
        mapped = Mapped(layout, "selavi", [video, audio], others)
    else:
        text = layout == "gdt_text"
        video = _video(state, "video_network.base.", {**GDT_VIDEO, "stride": 2} if text else GDT_VIDEO)
        video.head = mlp_head(state, "mlp_v.")
        towers = [video]
        dropped = {"video_network.base.fc.": "unused classifier"}
        if text:
            dropped |= {"text_network.": "GDT's word2vec text encoder (no project counterpart)",
                        "mlp_t.": "the text tower's projection head"}
        else:
            audio = _audio(state, "audio_network.base.", GDT_AUDIO)
            audio.head = mlp_head(state, "mlp_a.")
            towers.append(audio)
            dropped["audio_network.base.fc."] = "ResNet-9's unused 512 -> 1000 classifier"
        mapped = Mapped(layout, "gdt", towers, dropped)
    used = {"video_network.base.", "audio_network.base.", "mlp_v.", "mlp_a.", f"mlp_v{head}.", f"mlp_a{head}."}
    prefixes = used | set(mapped.dropped) if layout != "torchvision" else {""}
    for key in state:
        if not key.startswith(tuple(prefixes)):
            raise LayoutError(f"{key}: not part of the {layout} layout this version imports")
    mapped.dropped = {p: why for p, why in mapped.dropped.items() if any(k.startswith(p) for k in state)}
    return mapped
