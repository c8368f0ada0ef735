"""What the project promises about interpolation (issue 26, item 8): settings are plain
values. ``${...}`` of any kind (a key reference, ``oc.env``, ``oc.decode``, any resolver)
is refused where it is read, on the command line and in YAML, with one line naming the
source and key; so no environment value is ever resolved into a config or written into a
saved ``config.yaml``. A literal ``${`` is written ``\\${`` and saved escaped.
"""
from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, load_config, save_config, to_yaml
from pipeline.synth.stage import SynthConfig

SECRET = "hunter2-do-not-save"


@pytest.mark.parametrize("value", ["${oc.env:PIPELINE_TEST_SECRET}", "${oc.decode:'${oc.env:PIPELINE_TEST_SECRET}'}",
                                   "prefix-${oc.env:PIPELINE_TEST_SECRET,default}", "${n_classes}"])
def test_interpolation_is_refused_on_the_command_line(value, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_TEST_SECRET", SECRET)
    assert main(["synth", f"out={tmp_path / 'out'}", f"seed={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'seed'" in err and "interpolation" in err and SECRET not in err
    assert not (tmp_path / "out").exists()


def test_interpolation_is_refused_in_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TEST_SECRET", SECRET)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("out: /tmp/x\nobject_size: [26, '${oc.env:PIPELINE_TEST_SECRET}']\n")
    with pytest.raises(ConfigError, match=rf"{recipe}: key 'object_size\[1\]'") as err:
        load_config(SynthConfig, [recipe])
    assert SECRET not in str(err.value)


def test_a_literal_dollar_brace_is_saved_escaped_and_never_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TEST_SECRET", SECRET)
    cfg = load_config(SynthConfig, [], [r"out=/data/\${oc.env:PIPELINE_TEST_SECRET}"])
    assert cfg.out == "/data/${oc.env:PIPELINE_TEST_SECRET}"
    saved = save_config(cfg, tmp_path / "config.yaml")
    assert SECRET not in saved.read_text() and SECRET not in to_yaml(cfg)
    assert load_config(SynthConfig, [saved]).out == cfg.out  # loads back to the same literal
