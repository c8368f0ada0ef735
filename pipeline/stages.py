"""The stages the CLI and ``jobs/`` can run: name -> config schema and ``run`` function.

Imports are lazy (``module:attr`` strings, see ``pipeline.registry``) so ``--help`` does
not pay for torch. A stage is listed here only once it works end to end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pipeline.registry import Registry, resolve


@dataclass(frozen=True)
class Stage:
    name: str
    schema: str                      # "package.module:ConfigClass"
    target: str                      # "package.module:run"
    help: str
    positional: tuple[str, ...] = ()  # config keys filled by bare positional arguments

    def load_schema(self) -> type:
        return resolve(self.schema)

    def load_target(self) -> Callable[[Any], dict]:
        return resolve(self.target)


def _table(what: str, *stages: Stage) -> Registry[Stage]:
    return Registry(what, [(s.name, s) for s in stages])


STAGES = _table(
    "stage",
    Stage("synth", "pipeline.synth.stage:SynthConfig", "pipeline.synth.stage:run",
          "generate the synthetic labelled audio-visual corpus (mp4 + manifest)"),
    Stage("shard", "pipeline.shard.config:ShardConfig", "pipeline.shard.stage:run",
          "cut a video folder or manifest into webdataset tar shards of clips (mp4 + wav + json)"),
    Stage("train", "pipeline.train.config:TrainConfig", "pipeline.train.stage:run",
          "pretrain with DeepSpeed: gdt | simclr | clip (contrastive) | selavi"),
    Stage("cluster", "pipeline.train.methods.selavi:RunConfig", "pipeline.cluster.stage:run",
          "SeLaVi self-labelling: train, label every clip, metrics, cluster browser"),
    Stage("detect", "pipeline.detect.stage:DetectConfig", "pipeline.detect.stage:run",
          "audio-supervised detection: AV localisation (avloc) -> pseudo boxes -> Faster R-CNN -> mAP"),
    Stage("export", "pipeline.export.stage:ExportConfig", "pipeline.export.stage:run",
          "export each backbone of a run as safetensors + JSON (load with pipeline.load_backbone)",
          positional=("run_dir",)),
    Stage("import", "pipeline.importer.stage:ImportConfig", "pipeline.importer.stage:run",
          "a published checkpoint (GDT, SeLaVi, torchvision r2plus1d_18) as an export folder (weights-only read)",
          positional=("checkpoint",)),
    Stage("eval", "pipeline.eval.stage:EvalConfig", "pipeline.eval.stage:run",
          "kNN, linear probe, retrieval, clustering (and mAP) vs random init -> eval.json; "
          "protocol=linear|retrieval|esc50|clustering: the papers' downstream protocols"),
    Stage("finetune", "pipeline.train.methods.finetune:RunConfig", "pipeline.finetune.stage:run",
          "fine-tune an exported backbone per split (GDT's recipe), test video- and clip-level accuracy"),
    Stage("report", "pipeline.report.stage:ReportConfig", "pipeline.report.stage:run",
          "one offline HTML page: curves, eval tables, embeddings, retrieval, clusters, detection",
          positional=("run_dir",)),
    Stage("demo", "pipeline.demo.stage:DemoConfig", "pipeline.demo.stage:run",
          "the whole pipeline end to end on CPU (synthetic corpus unless corpus=DIR)"),
)

BENCHES = _table(
    "benchmark",
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
    Stage("shard_memory", "pipeline.bench.shard_memory:Config", "pipeline.bench.shard_memory:run",
          "peak RSS of the shard stage on a short cut of a film vs the whole film (flat with length?)"),
    Stage("scale", "pipeline.bench.scale:Config", "pipeline.bench.scale:run",
          "every stage at N and 8N synthetic videos, own process each: s/item, peak RSS, ratios"),
    Stage("learning", "pipeline.bench.learning:Config", "pipeline.bench.learning:run",
          "the demo's learned stages per seed: each held-out metric per seed, mean, std, random init; --markdown"),
)
