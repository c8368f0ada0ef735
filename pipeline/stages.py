"""The stages the CLI and ``jobs/`` can run: name -> config schema and ``run`` function.

Imports are lazy (``module:attr`` strings) so ``--help`` does not pay for torch.
A stage is listed here only once it works end to end.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Stage:
    name: str
    schema: str                      # "package.module:ConfigClass"
    target: str                      # "package.module:run"
    help: str
    positional: tuple[str, ...] = ()  # config keys filled by bare positional arguments
    default_config: str | None = None  # file under pipeline/configs/ merged before the user's

    def load_schema(self) -> type:
        return _resolve(self.schema)

    def load_target(self) -> Callable[[Any], dict]:
        return _resolve(self.target)


def _resolve(spec: str) -> Any:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


STAGES: tuple[Stage, ...] = (
    Stage("synth", "pipeline.synth.stage:SynthConfig", "pipeline.synth.stage:run",
          "generate the synthetic labelled audio-visual corpus (mp4 + manifest)"),
    Stage("shard", "pipeline.shard.stage:ShardConfig", "pipeline.shard.stage:run",
          "cut a video folder or manifest into webdataset tar shards of clips (mp4 + wav + json)",
          default_config="shard.yaml"),
    Stage("train", "pipeline.train.config:TrainConfig", "pipeline.train.engine:run",
          "pretrain with DeepSpeed: gdt | simclr | clip (contrastive) | selavi"),
    Stage("cluster", "pipeline.train.config:TrainConfig", "pipeline.train.cluster_stage:run",
          "SeLaVi self-labelling: train, label every clip, metrics, cluster browser",
          default_config="selavi_tiny.yaml"),
    Stage("detect", "pipeline.detect.stage:DetectConfig", "pipeline.detect.stage:run",
          "audio-supervised detection: AV localisation (avloc) -> pseudo boxes -> Faster R-CNN -> mAP",
          default_config="detect_tiny.yaml"),
    Stage("export", "pipeline.export.export:ExportConfig", "pipeline.export.export:run",
          "export each backbone of a run as safetensors + JSON (load with pipeline.load_backbone)",
          positional=("run_dir",)),
    Stage("eval", "pipeline.eval.stage:EvalConfig", "pipeline.eval.stage:run",
          "kNN, linear probe, retrieval, clustering (and mAP) vs random init -> eval.json"),
    Stage("report", "pipeline.report.report:ReportConfig", "pipeline.report.report:run",
          "one offline HTML page: curves, eval tables, embeddings, retrieval, clusters, detection",
          positional=("run_dir",)),
    Stage("demo", "pipeline.demo:DemoConfig", "pipeline.demo:run",
          "the whole pipeline end to end on CPU (synthetic corpus unless corpus=DIR)"),
)

BENCHES: tuple[Stage, ...] = (
    Stage("train", "pipeline.bench.train:Config", "pipeline.bench.train:run",
          "steps/s of the DeepSpeed engine vs a plain PyTorch loop (same model, data in memory)"),
    Stage("loader", "pipeline.bench.loader:Config", "pipeline.bench.loader:run",
          "clips/s of the loader (worker side; + DeviceAugment on CPU) vs the fastest raw decoder"),
    Stage("gpu", "pipeline.bench.gpu:Config", "pipeline.bench.gpu:run",
          "on a CUDA GPU: CPU vs GPU decode, DeviceAugment, 20 bf16 NCCL steps of the paper-scale GDT recipe"),
    Stage("sinkhorn", "pipeline.bench.sinkhorn:Config", "pipeline.bench.sinkhorn:run",
          "our distributed Sinkhorn-Knopp vs POT on the same problem: seconds, labels, peak memory"),
    Stage("shard", "pipeline.bench.shard:Config", "pipeline.bench.shard:run",
          "input seconds/s of the shard stage vs plain ffmpeg transcoding the same inputs"),
)


def find(name: str, table: tuple[Stage, ...]) -> Stage | None:
    return next((s for s in table if s.name == name), None)
