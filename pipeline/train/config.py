"""The typed schema of a training run, and the DeepSpeed config derived from it."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import MISSING
from pipeline.loader.loader import LoaderConfig
from pipeline.models.av_model import ModelConfig
from pipeline.objectives.gdt import GDTConfig
from pipeline.objectives.nce import NCEConfig
from pipeline.objectives.simclr import SimCLRConfig
from pipeline.train.methods.avloc import AVLocConfig
from pipeline.train.methods.finetune import Config as FinetuneConfig
from pipeline.train.methods.selavi import SeLaViConfig
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
class TrainConfig:
    out: str = field(default=MISSING, metadata={"help": "run folder: config, metrics, checkpoints, final weights"})
    method: str = field(default="gdt", metadata={"help": "gdt | simclr | clip | selavi | avloc | finetune"})
    steps: int = field(default=1000, metadata={"help": "optimizer steps", "min": 1})
    seed: int = field(default=0, metadata={"help": "model initialisation seed", "min": 0})
    init: str = field(default="", metadata={"help": "warm start: a finished run folder or .safetensors whose matching tensors initialise the model"})
    init_prefix: str = field(default="model.backbones.", metadata={"help": "only tensors whose names start with this are taken from init"})
    threads: int = field(default=0, metadata={"help": "torch intra-op threads of each training process; 0 = torch's default. "
                                             "On a small CPU shared with loader workers, fewer threads avoid oversubscription", "min": 0})
    log_every: int = field(default=10, metadata={"help": "log metrics every N steps", "min": 1})
    tensorboard: bool = field(default=True, metadata={"help": "also write TensorBoard event files"})
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ds: DSConfig = field(default_factory=DSConfig)
    ckpt: CheckpointConfig = field(default_factory=CheckpointConfig)
    gdt: GDTConfig = field(default_factory=GDTConfig)
    nce: NCEConfig = field(default_factory=NCEConfig)
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    selavi: SeLaViConfig = field(default_factory=SeLaViConfig)
    avloc: AVLocConfig = field(default_factory=AVLocConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


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
