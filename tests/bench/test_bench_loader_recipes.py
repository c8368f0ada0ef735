"""`bench loader --recipe NAME` / `--recipes all` on real (tiny) shards: each paper recipe is
measured at its own frames, crop size, views and audio window, against a raw decoder
that decodes the same frames."""
import json

import pytest
import yaml

from pipeline.bench import loader as bench
from pipeline.bench.loader_recipes import RECIPES, recipe_loader, recipe_names
from pipeline.config import CONFIGS, ConfigError, load_config
from pipeline.loader.decode import BACKENDS

SMALL = ["workers=0,1", "batches=1", "batch_size=2", "raw_clips=2", "raw_samples=8", "raw_seconds=0.2",
         "paper_batches=0"]


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_is_read_from_its_file(name):
    want = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["loader"]
    got = recipe_loader(name)
    assert got.clip.frames == want["clip"]["frames"] and got.clip.stride == want["clip"]["stride"]
    assert got.clip.positions == want["clip"].get("positions", 1)
    assert got.clip.copies == want["clip"].get("copies", 1)
    assert got.video.size == want["video"]["size"]
    assert got.workers == 2 and got.shards == ""  # the bench's own, not the recipe's 8-10 workers


def test_recipe_names_and_an_unknown_recipe():
    assert recipe_names("all") == list(RECIPES)
    assert recipe_names("gdt_k400, simclr_k400") == ["gdt_k400", "simclr_k400"]
    with pytest.raises(ConfigError, match="nope.yaml"):
        recipe_loader("nope")


def test_bench_at_gdt_and_finetune_settings(synth_shards, tmp_path):
    out = tmp_path / "bench.json"
    res = bench.run(load_config(bench.Config, [], [f"shards={synth_shards}", "recipe=gdt_k400",
                                                   "recipes=finetune_ucf101", f"json={out}", *SMALL]))
    assert json.loads(out.read_text()) == res
    assert res["recipe"] == "gdt_k400"
    # GDT: 30 frames at 112 px, 2 positions x reversed = 4 views, 2 of them made in the worker
    assert (res["frames"], res["size"], res["positions"], res["views"]) == (30, 112, 2, 4)
    assert res["backend"] == "auto" and res["backend_used"] in BACKENDS
    assert set(res["auto_ms_per_clip"]) == set(BACKENDS)
    wave = 2 * int(res["audio_rate"] * res["audio_seconds"])
    assert 2 * (30 * 112 * 112 * 3 + wave) < res["bytes_per_clip"] < 2 * (30 * 112 * 112 * 3 + wave) + 2048
    assert res["recipe_audio_rate"] == 24000
    for row in res["per_workers"].values():
        assert row["clips_per_s"] > 0 and row["peer_clips_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["clips_per_s"] / row["peer_clips_per_s"], abs=2e-3)
    assert "scaling_1_to_2" not in res  # only with 1 and 2 workers measured
    ft = res["recipes"]["finetune_ucf101"]
    assert (ft["frames"], ft["views"], ft["size"]) == (32, 1, recipe_loader("finetune_ucf101").video.size)
    clip = 32 * ft["size"] ** 2 * 3
    assert clip < ft["bytes_per_clip"] < clip + 2 * ft["audio_rate"] + 2048
    assert ft["profile_ms_per_clip"]["decode"] > 0
