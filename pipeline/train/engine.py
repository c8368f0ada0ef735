"""One DeepSpeed training engine for every method.

The engine knows nothing of GDT, SeLaVi or detection: a method is an ``nn.Module`` that
maps a batch to ``(loss, metrics)`` (see ``pipeline.train.method``). The engine owns the
process group, DeepSpeed, the loader, checkpoints (with loader position and RNG states,
so resuming is exact), metrics, and stop requests (pre-emption) from the launcher.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

from pipeline.config import save_config
from pipeline.io.folder_lock import FolderBusy, hold
from pipeline.loader.backend_choice import resolve_for_run
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader
from pipeline.train import checkpoint as ckpt
from pipeline.train.config import TrainConfig, deepspeed_config
from pipeline.train.distributed import any_rank, average_buffers, barrier, setup_distributed
from pipeline.train.method import StepContext, final_weights
from pipeline.train.methods import build_method
from pipeline.train.metrics_log import MetricsLog, truncate_jsonl
from pipeline.train.optim import build_optimizer, build_scheduler
from pipeline.train.warm_start import warm_start
from pipeline.utils.metrics import JsonlWriter

log = logging.getLogger(__name__)


def param_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in order: equal digests = equal models."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        if isinstance(t, torch.Tensor):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, stop_requested: Callable[[], bool] | None = None) -> dict:
    """Train to ``cfg.steps`` optimizer steps, or until a stop is requested on any rank.

    Returns ``{"status": "done" | "interrupted", "step", "checkpoint", "out"}``; on a stop
    request every rank saves a checkpoint first, so a requeued job resumes exactly.
    """
    info = setup_distributed()
    with hold_on_main(Path(cfg.out), "train", info.is_main):
        return _train(cfg, info, stop_requested)


@contextlib.contextmanager
def hold_on_main(out: Path, stage: str, is_main: bool, shared: bool = False) -> Iterator[None]:
    """Rank 0 owns ``out`` for the run (see ``pipeline.io.folder_lock``); when it cannot,
    every rank stops with the same error instead of waiting in a collective."""
    with contextlib.ExitStack() as stack:
        busy: FolderBusy | None = None
        if is_main:
            try:
                stack.enter_context(hold(out, stage, shared=shared))
            except FolderBusy as err:
                busy = err
        if any_rank(busy is not None):
            raise busy or FolderBusy(f"{out}: rank 0 could not take the run folder (see its error)")
        yield


def _train(cfg: TrainConfig, info, stop_requested: Callable[[], bool] | None) -> dict:
    import deepspeed

    out = Path(cfg.out)
    root = out / "checkpoints"
    # loader.clip.backend=auto: one choice for every rank and worker, kept across resumes
    # (read back from the run's config.yaml) and written into it below
    cfg.loader = resolve_for_run(cfg.loader, out / "config.yaml", info.is_main)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    method = build_method(cfg)
    if cfg.init:
        warm_start(method, cfg.init, cfg.init_prefix, cfg.init_as)  # a resumed checkpoint overrides it below
    if info.world_size > 1 and info.device.type == "cuda":
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)  # CPU BN stays local
    method.to(info.device)
    optimizer = build_optimizer(method, cfg.optim, info.world_size)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.steps)
    engine, _, _, _ = deepspeed.initialize(model=method, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=deepspeed_config(cfg), dist_init_required=False)
    loader = ClipLoader(cfg.loader, info.rank, info.world_size)
    step, resumed_from = 0, None
    state = ckpt.restore(engine, root, cfg.ckpt.resume, info.rank)
    if state is not None:
        loader.load_state_dict(state["loader"])
        step, resumed_from = int(state["step"]), state["path"]
        log.info("resumed from %s at step %d", resumed_from, step)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.ds.precision)
    augment = DeviceAugment.from_loader(cfg.loader, dtype).to(info.device)
    metrics = MetricsLog(out, enabled=info.is_main, tensorboard=cfg.tensorboard, step=step)
    samples = JsonlWriter(out / "samples" / f"rank{info.rank}.jsonl", enabled=cfg.sample_log)
    if cfg.sample_log:
        truncate_jsonl(samples.path, step)  # as metrics.jsonl: each step once after a resume
    ctx = StepContext(info=info, step=step, total_steps=cfg.steps, engine=engine)
    quiet = os.environ.get("TQDM_DISABLE") == "1"  # --quiet (an explicit disable overrides tqdm's env default)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=quiet or not info.is_main)
    last_ckpt, status = None, "done"
    window = {"data": 0.0, "compute": 0.0, "clips": 0, "skipped": 0}
    stop = False
    while step < cfg.steps and not stop:
        t_wait = time.perf_counter()
        for batch in loader:
            t_got = time.perf_counter()
            samples.write({"step": step + 1, "epoch": loader.epoch, "keys": list(batch["key"])})
            ctx.step = step
            method.on_step_start(ctx)
            loss, parts = engine(augment(batch))
            engine.backward(loss)
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            t_done = time.perf_counter()
            window["data"] += t_got - t_wait
            window["compute"] += t_done - t_got
            window["clips"] += len(batch["key"])
            window["skipped"] += int(batch.get("skipped", 0))
            if boundary:
                step += 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    metrics.log_step(step, loss, parts, engine, window, info.world_size,
                                     loader.skipped_total, bar)
                    window = {k: 0 for k in window}
                stop = stop_requested is not None and any_rank(bool(stop_requested()))
                if stop or step % cfg.ckpt.every == 0 or step == cfg.steps:
                    last_ckpt = ckpt.save(engine, root, step, loader.state_dict(), info.rank,
                                          cfg.ckpt.keep_last)
                if stop:
                    status = "interrupted"
                    break
                if step >= cfg.steps:
                    break
            t_wait = time.perf_counter()
    bar.close()
    if status == "done":
        average_buffers(method)
        if info.is_main:
            method.export_weights(final_weights(out))
    barrier()
    metrics.close()
    result = {"status": status, "step": step, "checkpoint": str(last_ckpt) if last_ckpt else None,
              "out": str(out), "resumed_from": resumed_from, "param_digest": param_digest(method)}
    log.info("train %s at step %d -> %s", status, step, out)
    return result
