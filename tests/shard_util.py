"""Helpers shared by tests (importable by name; fixtures live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

TINY_MODEL = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
              "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
              "model.embed_dim=16"]


def shard_manifest(rows: list[str], folder: Path, name: str, out: Path, clip_seconds: float = 3) -> Path:
    """Shard some rows of a synthetic manifest (paths relative to ``folder``) into ``out``."""
    from pipeline.cli import build_config
    from pipeline.stages import STAGES
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    stage = STAGES["shard"]
    stage.load_target()(build_config(stage, [], [f"input={manifest}", f"output={out}", "videos_per_shard=4",
                                                 f"clip_seconds={clip_seconds}", "short_side=64", "workers=2"]))
    return out
