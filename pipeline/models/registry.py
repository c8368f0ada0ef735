"""Backbones by name: ``build_video("r2plus1d_tiny", widths=[8, 16, 32, 64])``.

A name selects a preset of the family's typed config (VideoResNetConfig, AudioResNetConfig,
TextEncoderConfig); keyword arguments override its fields. Overrides are merged through
OmegaConf's structured configs, so a misspelt option or a wrong type fails here with one
line naming the backbone and the option, before any module is built.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models import audio, text, video
from pipeline.registry import Registry


@dataclass(frozen=True)
class Family:
    """A kind of backbone: its named presets (typed configs) and the module built from one."""
    presets: Registry[Any]
    module: Callable[[Any], nn.Module]


def _family(kind: str, presets: dict[str, Any], module: Callable[[Any], nn.Module]) -> Family:
    return Family(Registry(f"{kind} backbone", sorted(presets.items())), module)


FAMILIES: Registry[Family] = Registry("backbone kind", {
    "video": _family("video", video.PRESETS, video.VideoBackbone),
    "audio": _family("audio", audio.PRESETS, audio.AudioBackbone),
    "text": _family("text", text.PRESETS, text.TextEncoder),
})


def available(kind: str) -> list[str]:
    """Registered names of a backbone kind ("video", "audio" or "text")."""
    return FAMILIES[kind].presets.names()


def backbone_config(kind: str, name: str, **overrides: Any) -> Any:
    """The typed config of backbone ``name`` with ``overrides`` applied (validated)."""
    preset = FAMILIES[kind].presets[name]
    fields = [f.name for f in dataclasses.fields(preset)]
    for key in overrides:
        if key not in fields:
            raise ConfigError(f"{kind} backbone {name!r}: unknown option {key!r}; options: {', '.join(fields)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(dataclasses.replace(preset)), overrides)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{kind} backbone {name!r}: bad value for option {key!r}: "
                          f"{str(err).splitlines()[0]}") from None


def _build(kind: str, name: str, overrides: dict[str, Any]) -> nn.Module:
    cfg = backbone_config(kind, name, **overrides)
    return FAMILIES[kind].module(cfg)


def build_video(name: str, **overrides: Any) -> video.VideoBackbone:
    """[B, 3, T, H, W] -> [B, out_dim]; ``forward_features`` keeps the T', H', W' map."""
    return _build("video", name, overrides)  # type: ignore[return-value]


def build_audio(name: str, **overrides: Any) -> audio.AudioBackbone:
    """[B, 1, n_mels, frames] -> [B, out_dim]."""
    return _build("audio", name, overrides)  # type: ignore[return-value]


def build_text(name: str, **overrides: Any) -> text.TextEncoder:
    """ids [B, L] (0 = pad), lengths [B] -> [B, out_dim]."""
    return _build("text", name, overrides)  # type: ignore[return-value]


BUILDERS: Registry[Callable[..., nn.Module]] = Registry(
    "backbone kind", {"video": build_video, "audio": build_audio, "text": build_text})
