"""The typed schema of a training run, and the DeepSpeed config derived from it.

``TrainConfig`` holds what the engine reads. Each method module declares its own run config,
a subclass that adds its section(s) (``gdt.RunConfig`` adds ``gdt:``, SeLaVi's adds
``selavi:`` and the ``gdt:`` loss it uses), so type checkers see every section where it is
used. ``load_config(TrainConfig, ...)`` reads ``method`` from the files and overrides first
(``config_variant``) and builds that method's class: reading a config imports only the
method it names, and a saved config holds only that method's sections.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.config import MISSING, ConfigError
from pipeline.loader.loader import LoaderConfig
from pipeline.models.av_model import ModelConfig
from pipeline.train.methods import METHODS
from pipeline.train.optim import OptimConfig


@dataclass
class DSConfig:
    zero_stage: int = field(default=1, metadata={"help": "ZeRO stage: 0, 1 or 2", "choices": [0, 1, 2]})
    precision: str = field(default="fp32", metadata={"help": "fp32 | bf16 | fp16", "choices": ["fp32", "bf16", "fp16"]})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step", "min": 1})
    clip_grad: float = field(default=1.0, metadata={"help": "gradient norm clipping (0 = off)", "min": 0})


@dataclass
class CheckpointConfig:
    every: int = field(default=200, metadata={"help": "save every N optimizer steps (and at the end)", "min": 1})
    keep_last: int = field(default=2, metadata={"help": "complete checkpoints kept (0 = all)", "min": 0})
    resume: str = field(default="auto", metadata={"help": "auto (newest complete one in out/checkpoints) | none | PATH"})


METHOD_HELP = {"help": "the training method (pipeline.train.methods); it decides which sections the "
                       "config has (gdt:, simclr:, nce:, selavi: + gdt:, avloc:, finetune:)",
               "choices": tuple(METHODS.names())}


@dataclass
class TrainConfig:
    """A training run: what the engine itself reads. A method's ``RunConfig`` adds its sections."""
    out: str = field(default=MISSING, metadata={"help": "run folder: config, metrics, checkpoints, final weights"})
    method: str = field(default="gdt", metadata=METHOD_HELP)
    steps: int = field(default=1000, metadata={"help": "optimizer steps", "min": 1})
    seed: int = field(default=0, metadata={"help": "model initialisation seed", "min": 0})
    init: str = field(default="", metadata={"help": "warm start: a finished run folder or .safetensors whose matching tensors initialise the model"})
    init_prefix: str = field(default="model.backbones.", metadata={"help": "only tensors whose names start with this are taken from init"})
    init_as: str = field(default="", metadata={"help": "the prefix the taken tensors have in this model, in place of init_prefix "
                                               "(empty: the same names), e.g. init_prefix=model.backbones.audio. init_as=audio. "
                                               "starts avloc's audio net from a GDT run"})
    threads: int = field(default=0, metadata={"help": "torch intra-op threads of each training process; 0 = torch's default. "
                                             "On a small CPU shared with loader workers, fewer threads avoid oversubscription", "min": 0})
    log_every: int = field(default=10, metadata={"help": "log metrics every N steps", "min": 1})
    tensorboard: bool = field(default=True, metadata={"help": "also write TensorBoard event files"})
    sample_log: bool = field(default=False, metadata={
        "help": "write the clip keys of every batch to out/samples/rank<R>.jsonl (step, loader "
                "epoch, keys): which clips each rank trained on, to audit the split of the data"})
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ds: DSConfig = field(default_factory=DSConfig)
    ckpt: CheckpointConfig = field(default_factory=CheckpointConfig)

    @classmethod
    def config_variant(cls, layers: list[tuple[str, DictConfig]]) -> tuple[type, list[tuple[str, DictConfig]]]:
        """The schema these YAML/override layers describe (``load_config``'s hook): the run
        config of the method they name (``TrainConfig`` itself stands for any method), and the
        layers without sections of other methods that only repeat those methods' defaults
        (configs saved before 2026-12 carried every method's section)."""
        schema = cls
        if cls is TrainConfig:
            source, name = _named_method(layers)
            if not isinstance(name, str) or name not in METHODS:
                raise ConfigError(f"{source}: bad value for key 'method': {name!r}; "
                                  f"must be one of {', '.join(repr(m) for m in METHODS.names())}")
            schema = METHODS[name].load().RunConfig
        return schema, [(source, _without_foreign_defaults(schema, source, layer)) for source, layer in layers]

    def check(self) -> None:
        own = METHODS[self.method].load().RunConfig
        if type(self) is not own:
            raise ConfigError(f"method {self.method!r} is configured by {own.__module__}.RunConfig; "
                              f"this {type(self).__module__}.{type(self).__qualname__} is method "
                              f"{_declared_method(type(self))!r}'s", key="method")


def method_field(name: str) -> Any:
    """The ``method`` field of a method's run config: the same help, its own default."""
    return field(default=name, metadata=METHOD_HELP)


def _declared_method(schema: type) -> str:
    return next(f.default for f in fields(schema) if f.name == "method")


def _named_method(layers: list[tuple[str, DictConfig]]) -> tuple[str, Any]:
    """(source, value) of the last layer that sets ``method``, else the default."""
    named = ("default", _declared_method(TrainConfig))
    for source, layer in layers:
        value = OmegaConf.select(layer, "method", default=None, throw_on_missing=False)
        if value is not None:
            named = (source, value)
    return named


def _without_foreign_defaults(schema: type, source: str, layer: DictConfig) -> DictConfig:
    """``layer`` without the sections of methods ``schema`` does not run; such a section is
    refused unless it only repeats that method's defaults."""
    own = {f.name for f in fields(schema)}
    owners: dict[str, list[str]] = {}  # section -> the methods whose runs have it
    typed_by: dict[str, str] = {}  # section -> the method whose Config it is
    for spec_name, spec in METHODS.items():
        typed_by.setdefault(spec.section, spec_name)
        for section in (spec.section, *spec.uses):
            owners.setdefault(section, []).append(spec_name)
    foreign = [k for k in layer.keys() if k in owners and k not in own]
    if not foreign:
        return layer
    kept = OmegaConf.create({k: v for k, v in layer.items() if k not in foreign})
    for key in foreign:
        section = METHODS[typed_by[key]].load().Config
        default = OmegaConf.structured(section)
        try:
            same = OmegaConf.merge(default, layer[key]) == default
        except Exception:  # not even that section's shape: certainly not its defaults
            same = False
        if not same:
            raise ConfigError(f"{source}: section '{key}' configures method {' / '.join(owners[key])}, "
                              f"not this run's method {_declared_method(schema)!r} (set method= or "
                              "remove the section)")
    return kept


def deepspeed_config(cfg: TrainConfig) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.loader.batch_size,
        "gradient_accumulation_steps": cfg.ds.grad_accum,
        "gradient_clipping": cfg.ds.clip_grad,
        "zero_optimization": {"stage": cfg.ds.zero_stage},
        "bf16": {"enabled": cfg.ds.precision == "bf16"},
        "fp16": {"enabled": cfg.ds.precision == "fp16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
