"""Splits and folds as a job array: one task per part, each writing its own result; the
stage writes the summary (the mean over parts) in whichever task completes the set.

``python -m jobs eval protocol=linear splits=[S1,S2,S3]`` (or ``protocol=esc50
folds=DIR``): one evaluation task per split or fold. ``python -m jobs finetune RECIPE
finetune.splits=[...]``: one training job (nodes x tasks, requeued on pre-emption) per
split. What the parts are is the stage's answer (``pipeline.eval``); this only submits.
"""
from __future__ import annotations

from typing import Any

from jobs.config import LaunchConfig, SlurmConfig, load_slurm
from jobs.launch import submit
from jobs.tasks import StageTask, TrainTask, replace_key, with_resume_auto
from pipeline.stages import STAGES

FINETUNE = "pipeline.finetune.stage:run_parts"


def launch_eval(cfg: Any, launch: LaunchConfig, slurm: SlurmConfig | None = None) -> tuple[list, list[str]]:
    from pipeline.eval.protocols import parts

    slurm = slurm or load_slurm("eval")
    task = StageTask(STAGES["eval"].target)
    if cfg.protocol == "default" or cfg.only >= 0:
        return submit("eval", task, [cfg], [""], launch, slurm, cfg), [""]
    names = [p.name or "all" for p in parts(cfg.protocol, cfg.splits, cfg.folds, cfg.train_shards, cfg.test_shards)]
    cfgs = [replace_key(cfg, "only", i) for i in range(len(names))]
    return submit("eval", task, cfgs, names, launch, slurm, cfg), names


def launch_finetune(cfg: Any, launch: LaunchConfig, slurm: SlurmConfig | None = None) -> tuple[list, list[str]]:
    from pipeline.finetune.stage import splits

    slurm = slurm or load_slurm("train")
    with_resume_auto(cfg)  # fail now, not at the first requeue, if cfg cannot resume
    names = [s.name for s in splits(cfg)]
    todo = [cfg.finetune.only] if cfg.finetune.only >= 0 else list(range(len(names)))
    cfgs = [replace_key(cfg, "finetune.only", i) for i in todo]
    labels = [names[i] for i in todo]
    return submit("finetune", TrainTask(FINETUNE), cfgs, labels, launch, slurm, cfg), labels
