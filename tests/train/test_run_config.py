"""A training run's config is typed by its method (issue 25): ``load_config(TrainConfig, ...)``
builds the run config of the method the sources name, imports only that method, saves only
its sections, and refuses another method's settings with one line naming file and section."""
from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from pipeline.cli import main
from pipeline.config import CONFIGS, ConfigError, load_config, to_yaml
from pipeline.train.config import TrainConfig
from pipeline.train.methods import METHODS


def test_reading_a_config_imports_only_its_method():
    code = ("import sys; from pipeline.config import load_config, CONFIGS; "
            "from pipeline.train.config import TrainConfig; "
            "cfg = load_config(TrainConfig, [CONFIGS / 'gdt_tiny.yaml'], ['out=o']); "
            "print(type(cfg).__module__); "
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.train.methods.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    module, loaded = out.splitlines()
    assert module == "pipeline.train.methods.gdt"
    assert eval(loaded) == ["pipeline.train.methods.contrastive", "pipeline.train.methods.gdt"]


@pytest.mark.parametrize("recipe, sections", [("gdt_tiny", {"gdt"}), ("selavi_tiny", {"selavi", "gdt"}),
                                              ("finetune_tiny", {"finetune"}), ("simclr_k400", {"simclr"}),
                                              ("clip_mmv_howto100m", {"nce"})])
def test_a_saved_config_holds_only_its_methods_sections(recipe, sections, tmp_path):
    cfg = load_config(TrainConfig, [CONFIGS / f"{recipe}.yaml"], ["out=o"])
    saved = OmegaConf.create(to_yaml(cfg))
    all_sections = {spec.section for spec in METHODS}
    assert set(saved.keys()) & all_sections == sections
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(TrainConfig, [path]) == cfg  # reads back as the same typed config
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # submitit carries it by class name


def test_another_methods_section_is_refused_unless_it_repeats_defaults(tmp_path):
    """A config saved before the split carried every section at its defaults: it still loads.
    Settings for a method the run does not use are an error, not silently ignored."""
    cfg = load_config(TrainConfig, [CONFIGS / "gdt_tiny.yaml"], ["out=o"])
    selavi_defaults = OmegaConf.structured(METHODS["selavi"].load().Config)
    old = OmegaConf.merge(OmegaConf.create(to_yaml(cfg)), {"selavi": selavi_defaults})
    old_path = tmp_path / "old_config.yaml"
    old_path.write_text(OmegaConf.to_yaml(old))
    assert load_config(TrainConfig, [old_path]) == cfg

    with pytest.raises(ConfigError, match=r"command line 'selavi.clusters=7': section 'selavi' configures "
                                          r"method selavi, not this run's method 'gdt'"):
        load_config(TrainConfig, [CONFIGS / "gdt_tiny.yaml"], ["out=o", "selavi.clusters=7"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: simclr\ngdt: {temperature: {value: 0.5}}\n")
    with pytest.raises(ConfigError, match=rf"{bad}: section 'gdt' configures method gdt / selavi"):
        load_config(TrainConfig, [bad], ["out=o"])


def test_the_method_is_read_before_the_sections_and_checked_where_it_was_set(tmp_path):
    cfg = load_config(TrainConfig, [CONFIGS / "gdt_tiny.yaml"], ["out=o", "method=selavi", "selavi.clusters=7"])
    assert cfg.method == "selavi" and cfg.selavi.clusters == 7
    with pytest.raises(ConfigError, match=r"command line 'method=sela': bad value for key 'method': 'sela'; "
                                          r"must be one of 'gdt'"):
        load_config(TrainConfig, [], ["out=o", "method=sela"])
    cluster = METHODS["selavi"].load().RunConfig  # the cluster stage runs SeLaVi only
    with pytest.raises(ConfigError, match=r"command line 'method=gdt': bad value for key 'method'"):
        load_config(cluster, [CONFIGS / "selavi_tiny.yaml"], ["out=o", "method=gdt"])


def test_help_lists_the_sections_of_the_method_asked_for(capsys):
    assert main(["train", "--help"]) == 0
    plain = capsys.readouterr().out
    assert "gdt.form" in plain and "selavi.clusters" not in plain
    assert main(["train", "selavi_tiny", "--help"]) == 0
    selavi = capsys.readouterr().out
    assert "selavi.clusters" in selavi and "gdt.form" in selavi and "nce." not in selavi
    assert main(["train", "method=clip", "--help"]) == 0
    assert "nce.temperature" in capsys.readouterr().out
