"""Config validation: wrong keys, types and missing values fail early and name the culprit."""
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from pipeline.config import MISSING, ConfigError, flat_fields, load_config, save_config


@dataclass
class Inner:
    rate: int = 16000
    names: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class Schema:
    out: str = field(default=MISSING, metadata={"help": "where"})
    steps: int = 10
    lr: float = 0.1
    inner: Inner = field(default_factory=Inner)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_merge_order_and_types(tmp_path):
    a = write(tmp_path, "a.yaml", "out: x\nsteps: 5\ninner:\n  rate: 8000\n")
    b = write(tmp_path, "b.yaml", "steps: 7\n")
    cfg = load_config(Schema, [a, b], ["lr=0.5", "inner.names=[p,q]"])
    assert isinstance(cfg, Schema) and isinstance(cfg.inner, Inner)
    assert (cfg.out, cfg.steps, cfg.lr, cfg.inner.rate, cfg.inner.names) == ("x", 7, 0.5, 8000, ["p", "q"])


def test_misspelt_key_names_key_and_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "out: x\ninner:\n  rat: 8000\n")
    with pytest.raises(ConfigError) as err:
        load_config(Schema, [bad])
    msg = str(err.value)
    assert "inner.rat" in msg and str(bad) in msg and "inner.rate" in msg  # suggestion


def test_wrong_type_names_key(tmp_path):
    bad = write(tmp_path, "t.yaml", "out: x\nsteps: many\n")
    with pytest.raises(ConfigError, match=r"t\.yaml.*'steps'"):
        load_config(Schema, [bad])


def test_override_errors_and_missing(tmp_path):
    with pytest.raises(ConfigError, match="command line.*'stepz'"):
        load_config(Schema, [], ["out=x", "stepz=3"])
    with pytest.raises(ConfigError, match="missing required.*out"):
        load_config(Schema, [], [])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Schema, [tmp_path / "nope.yaml"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(Schema, [], ["out"])


def test_save_roundtrip(tmp_path):
    cfg = load_config(Schema, [], ["out=o", "steps=3"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(Schema, [path]) == cfg


def test_flat_fields():
    rows = {r[0]: r for r in flat_fields(Schema)}
    assert rows["inner.rate"][2] == 16000 and rows["out"][3] == "where"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True)


def test_cli_help_lists_stages_and_keys():
    res = cli("--help")
    assert res.returncode == 0 and "synth" in res.stdout
    res = cli("synth", "--help")
    assert res.returncode == 0 and "n_videos" in res.stdout and "REQUIRED" in res.stdout


def test_cli_misspelt_key_exits_nonzero(tmp_path):
    bad = write(tmp_path, "synth.yaml", f"out: {tmp_path}/o\nn_vidoes: 3\n")
    res = cli("synth", str(bad))
    assert res.returncode == 2
    assert "n_vidoes" in res.stderr and str(bad) in res.stderr and "n_videos" in res.stderr
    assert not (tmp_path / "o").exists()  # nothing started
    res = cli("nosuchstage")
    assert res.returncode == 2 and "unknown stage" in res.stderr


def test_packaged_recipe_by_name_and_unknown_word():
    """A bare recipe name is configs/<name>.yaml, found inside the package."""
    from pipeline.cli import build_config, parse_args, recipes
    from pipeline.config import CONFIGS
    from pipeline.stages import STAGES

    assert {"gdt_tiny", "selavi_tiny", "deepspeed/zero2_bf16"} <= set(recipes())
    assert not any(r.startswith("slurm/") for r in recipes())
    stage = STAGES["train"]
    files, overrides, _ = parse_args(stage, ["gdt_tiny", "deepspeed/zero2_bf16", "out=o", "steps=3"])
    assert files == [str(CONFIGS / "gdt_tiny.yaml"), str(CONFIGS / "deepspeed" / "zero2_bf16.yaml")]
    cfg = build_config(stage, files, overrides)
    assert (cfg.method, cfg.steps, cfg.ds.precision, cfg.loader.video.size) == ("gdt", 3, "bf16", 32)
    assert parse_args(STAGES["export"], ["runs/a"])[1] == ["run_dir=runs/a"]  # positional stays
    res = cli("train", "gdt_tiyn", "out=o")
    assert res.returncode == 2 and "gdt_tiyn" in res.stderr and "gdt_tiny" in res.stderr
