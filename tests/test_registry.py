"""One registry helper: the tables of stages, benchmarks, methods and backbones, the
``module:attr`` resolver, and the method contract (own section + shared settings)."""
import dataclasses
import inspect
import typing

import pytest

from pipeline.config import CONFIGS, ConfigError, load_config
from pipeline.registry import Registry, resolve


def test_registry_lookup_errors_and_order():
    table = Registry("colour", [("red", 1), ("green", 2)])
    assert table["green"] == 2 and table.names() == ["red", "green"] and list(table) == [1, 2]
    assert "red" in table and table.get("blue") is None and len(table) == 2
    with pytest.raises(ConfigError, match="unknown colour 'blue'; choose from red, green"):
        table["blue"]
    with pytest.raises(ValueError, match="registered twice"):
        Registry("colour", [("red", 1), ("red", 2)])


def test_resolve_import_strings():
    assert resolve("pipeline.registry:Registry") is Registry
    assert resolve("pipeline.registry:Registry.names") is Registry.names
    for bad in ("pipeline.registry", "pipeline.registry:", ":Registry"):
        with pytest.raises(ValueError, match="not an import string"):
            resolve(bad)


def test_every_table_is_a_registry_of_importable_entries():
    from pipeline.models.registry import BUILDERS, FAMILIES
    from pipeline.stages import BENCHES, STAGES
    from pipeline.train.methods import METHODS

    for table in (STAGES, BENCHES):
        assert isinstance(table, Registry)
        for stage in table:
            assert dataclasses.is_dataclass(stage.load_schema()) and callable(stage.load_target())
    assert all(isinstance(t, Registry) for t in (METHODS, FAMILIES, BUILDERS))
    assert set(FAMILIES.names()) == set(BUILDERS.names()) == {"video", "audio", "text"}
    with pytest.raises(ConfigError, match="unknown audio backbone 'resnet99'"):
        BUILDERS["audio"]("resnet99")


def test_methods_get_their_own_section_and_shared_settings():
    """Each method module exports Config, Method and RunConfig; RunConfig is TrainConfig plus
    the method's section and the sections it uses, typed (visible to type checkers);
    Method takes its own section, the shared settings and only the sections it declares."""
    from pipeline.train.config import TrainConfig
    from pipeline.train.method import Method, SharedSettings
    from pipeline.train.methods import METHODS, build_method

    run_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not {"gdt", "nce", "simclr", "selavi", "avloc", "finetune"} & run_fields
    for name, spec in METHODS.items():
        module = spec.load()
        assert dataclasses.is_dataclass(module.Config) and issubclass(module.Method, Method), name
        assert issubclass(module.RunConfig, TrainConfig), name
        hints = typing.get_type_hints(module.RunConfig)
        assert set(hints) - run_fields == {spec.section, *spec.uses}, name  # its sections only
        assert hints[spec.section] is module.Config, name
        assert module.RunConfig(out="o").method == name
        params = list(inspect.signature(module.Method.__init__).parameters)
        assert params == ["self", "cfg", "shared", *spec.uses], (name, params)
    cfg = load_config(TrainConfig, [CONFIGS / "selavi_tiny.yaml"], ["out=o"])
    assert type(cfg) is METHODS["selavi"].load().RunConfig
    method = build_method(cfg)
    assert method.scfg is cfg.selavi and isinstance(method.shared, SharedSettings)
    assert method.shared == SharedSettings(model=cfg.model, loader=cfg.loader, steps=cfg.steps, out=cfg.out)
    with pytest.raises(ConfigError, match="unknown method 'sela'; choose from gdt, simclr"):
        build_method(cfg, "sela")


def test_step_context_is_typed():
    from pipeline.train.method import StepContext

    hints = typing.get_type_hints(StepContext, localns={"DeepSpeedEngine": object})
    assert set(hints) == {"info", "step", "total_steps", "engine"}
    assert typing.Any not in hints.values()
