"""``python -m pipeline bench train``: steps/s of the DeepSpeed engine against a plain
PyTorch loop with the same tiny model, optimizer, batch (in memory) and thread count,
measured alternately in the same process so machine noise hits both alike."""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.config import load_config
from pipeline.io.atomic import write_json
from pipeline.train.config import TrainConfig, deepspeed_config
from pipeline.train.distributed import setup_distributed
from pipeline.train.method import build_method
from pipeline.train.optim import build_optimizer, warmup_cosine


@dataclass
class Config:
    steps: int = field(default=20, metadata={"help": "timed steps per round and loop", "min": 1})
    rounds: int = field(default=3, metadata={"help": "alternating rounds (engine, plain, engine, ...)", "min": 1})
    batch_size: int = field(default=16, metadata={"help": "clips per batch", "min": 1})
    frames: int = field(default=8, metadata={"help": "frames per clip", "min": 1})
    size: int = field(default=48, metadata={"help": "crop size", "min": 8})
    zero_stage: int = field(default=1, metadata={"help": "ZeRO stage of the engine", "choices": [0, 1, 2]})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def _cfg(c: Config) -> TrainConfig:
    return load_config(TrainConfig, [], [
        "out=/tmp/bench-train-unused", "method=gdt", "gdt.reversal=off", "gdt.shift=off",
        "loader.clip.reverse=false", "model.video.name=r3d_tiny", "model.video.args={widths: [8, 16, 32, 64]}",
        "model.audio.name=resnet_tiny", "model.embed_dim=64", f"loader.batch_size={c.batch_size}",
        f"ds.zero_stage={c.zero_stage}", f"steps={c.steps * c.rounds * 2}"])


def run(c: Config) -> dict:
    info = setup_distributed()
    import deepspeed
    cfg = _cfg(c)
    torch.manual_seed(0)
    batch = {"video": torch.randn(c.batch_size, 1, 3, c.frames, c.size, c.size),
             "audio": torch.randn(c.batch_size, 1, 1, 40, 101), "key": [str(i) for i in range(c.batch_size)]}
    plain = build_method(cfg).to(info.device)
    ds_model = copy.deepcopy(plain)
    opt = build_optimizer(plain, cfg.optim, 1)
    sched = warmup_cosine(opt, cfg.optim, cfg.steps)
    ds_opt = build_optimizer(ds_model, cfg.optim, 1)
    engine, _, _, _ = deepspeed.initialize(model=ds_model, optimizer=ds_opt,
                                           lr_scheduler=warmup_cosine(ds_opt, cfg.optim, cfg.steps),
                                           config=deepspeed_config(cfg), dist_init_required=False)

    def engine_step():
        loss, _ = engine(batch)
        engine.backward(loss)
        engine.step()

    def plain_step():
        loss, _ = plain(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), cfg.ds.clip_grad)
        opt.step()
        sched.step()

    times = {"engine": 0.0, "plain": 0.0}
    for fn in (engine_step, plain_step):  # warm-up
        fn()
    for _ in range(c.rounds):
        for name, fn in (("engine", engine_step), ("plain", plain_step)):
            start = time.perf_counter()
            for _ in range(c.steps):
                fn()
            times[name] += time.perf_counter() - start
    n = c.steps * c.rounds
    result = {"engine_steps_per_s": round(n / times["engine"], 3), "plain_steps_per_s": round(n / times["plain"], 3),
              "ratio": round(times["plain"] / times["engine"], 3), "steps": n, "batch_size": c.batch_size,
              "zero_stage": c.zero_stage, "device": str(info.device), "threads": torch.get_num_threads()}
    if c.json:
        Path(c.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(c.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
