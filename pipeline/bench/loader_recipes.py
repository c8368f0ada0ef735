"""The paper recipes' loader settings for ``bench loader --recipe NAME`` / ``--recipes all``.

Why: the loader's gap to the raw decoder is widest at the clip lengths the papers use
(30-32 frames, two positions for GDT), so the benchmark measures each recipe's own
frames, stride, crop size, views (positions x copies, reversal) and audio window, read
from the recipe file itself; the bench keeps only its own shards, worker counts, batch
size and epoch length.
"""
from __future__ import annotations

from dataclasses import replace

from omegaconf import OmegaConf

from pipeline.config import CONFIGS, ConfigError, check_values
from pipeline.loader.loader import LoaderConfig

# the paper recipes whose loader the issue names; ``--recipes all`` runs these in order
RECIPES = ("gdt_k400", "selavi_vggsound", "simclr_k400", "finetune_ucf101")
KEPT = ("clip", "video", "audio", "modalities")  # what a recipe decides; the bench the rest


def recipe_loader(name: str) -> LoaderConfig:
    """The ``loader`` section of ``configs/NAME.yaml`` as a checked LoaderConfig
    (only the keys of ``KEPT``; shards, workers and batch come from the bench)."""
    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"bench loader: recipe={name!r}: no {path} (recipes: {', '.join(RECIPES)})")
    section = (OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}).get("loader") or {}
    kept = {k: v for k, v in section.items() if k in KEPT}
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LoaderConfig), kept))
    except Exception as err:  # noqa: BLE001 - OmegaConf's errors name the key
        raise ConfigError(f"{path}: loader: {err}") from None
    check_values(cfg, {}, "loader.")
    return cfg


def recipe_names(arg: str) -> list[str]:
    """``all`` or a comma-separated list of recipe names."""
    return list(RECIPES) if arg == "all" else [n.strip() for n in arg.split(",") if n.strip()]


def setting(template: LoaderConfig) -> dict:
    """What a recipe's loader makes per sample, for the JSON."""
    c = template.clip
    return {"frames": c.frames, "stride": c.stride, "size": template.video.size, "positions": c.positions,
            "copies": c.copies, "reverse": c.reverse, "views": c.positions * c.copies * (2 if c.reverse else 1),
            "modalities": list(template.modalities), "audio_rate": template.audio.rate,
            "audio_seconds": template.audio.seconds,
            "recipe_audio_rate": getattr(template, "recipe_audio_rate", template.audio.rate)}


def for_run(template: LoaderConfig, shards: str, workers: int, batch_size: int, batches: int,
            backend: str) -> LoaderConfig:
    """``template`` with the bench's shards, workers, batch and epoch length."""
    return replace(template, shards=shards, sources=[], workers=workers, batch_size=batch_size,
                   epoch_batches=(batches + 1) * max(workers, 1),
                   clip=replace(template.clip, backend=backend))


def shard_audio_rate(samples) -> int | None:
    """The sample rate of the shards' audio (fixed when sharding), from the first WAV."""
    from pipeline.io.wav import wav_layout
    for s in samples.samples:
        if "wav" in s:
            return int(wav_layout(s["wav"])[0])
    return None


def at_rate(template: LoaderConfig, rate: int | None) -> LoaderConfig:
    """A recipe's loader reading the shards' audio rate: the rate is the shard stage's
    choice (the loader refuses any other), the window length and the rest stay the
    recipe's; ``setting`` reports the rate used and ``recipe_audio_rate`` the recipe's."""
    if rate is None or rate == template.audio.rate:
        return template
    out = replace(template, audio=replace(template.audio, rate=rate))
    out.recipe_audio_rate = template.audio.rate  # noted for the JSON only
    return out
