"""The typed schema of a training run, and the DeepSpeed config derived from it.

``TrainConfig`` is ``RunConfig`` (what the engine reads) plus one section per registered
method (``gdt:``, ``nce:``, ``simclr:``, ``selavi:``, ``avloc:``), typed by each method
module's ``Config``: registering a method in ``pipeline.train.methods`` adds its section.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

from pipeline.config import MISSING
from pipeline.loader.loader import LoaderConfig
from pipeline.models.av_model import ModelConfig
from pipeline.train.methods import METHODS, sections
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


@dataclass
class RunConfig:
    """A training run without the methods' sections: what the engine itself reads."""
    out: str = field(default=MISSING, metadata={"help": "run folder: config, metrics, checkpoints, final weights"})
    method: str = field(default="gdt", metadata={"help": "the training method (pipeline.train.methods)",
                                                 "choices": tuple(METHODS.names())})
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


TrainConfig = make_dataclass(
    "TrainConfig", [(name, section, field(default_factory=section)) for name, section in sections()],
    bases=(RunConfig,), namespace={"__doc__": "A training run: RunConfig plus every method's section."})
TrainConfig.__module__ = __name__  # pickled by name (submitit jobs carry the config)


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
