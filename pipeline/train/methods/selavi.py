"""SeLaVi (Asano et al., NeurIPS 2020): self-labelling with audio and video as
augmentations of each other.

h heads of K clusters on both the video and the audio backbone. On a schedule denser
early, the whole dataset's head outputs are collected (float16, each rank its own
shards, streamed to disk and memory-mapped back: ``LogProbStore``) and the distributed
Sinkhorn-Knopp solver assigns one label per sample and head from the cross-modal
probabilities (geometric mean of the two softmaxes), one head at a time. Between
re-labellings both heads learn to predict those labels (0.5 CE video + 0.5 CE audio,
averaged over heads), optionally plus a weighted GDT contrastive loss.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from pipeline.config import ConfigError
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader
from pipeline.models.av_model import AVModel
from pipeline.models.cluster_heads import HEAD_FORMS, LinearClusterHeads, build_cluster_heads
from pipeline.objectives.gdt import GDT, GDTConfig
from pipeline.objectives.marginals import MARGINAL_ORDERS, official_gauss_draws, official_gauss_step
from pipeline.objectives.sinkhorn import SinkhornConfig, sinkhorn_knopp
from pipeline.train import method
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import SharedSettings, StepContext
from pipeline.train.logprob_store import LogProbStore
from pipeline.train.methods.contrastive import check_views

log = logging.getLogger(__name__)


@dataclass
class SeLaViConfig:
    clusters: int = field(default=10, metadata={"help": "K clusters per head", "min": 2})
    heads: int = field(default=10, metadata={"help": "h clustering heads per modality", "min": 1})
    head: str = field(default="linear", metadata={
        "help": "form of each modality's heads: official_mlp = the official model's per-head MLP "
                "(Dropout 0.3, Linear 512 no bias, BN, ReLU, Dropout 0.3, Linear K); linear = one "
                "Linear D -> h*K", "choices": HEAD_FORMS})
    marginal_order: str = field(default="by_size", metadata={
        "help": "gauss marginals only: by_size = the largest target size to the currently largest "
                "cluster, one draw for all heads; official = as the official code runs it (sizes "
                "~ 1/draw, one draw per head, order permuted by the cluster masses' argsort at "
                "every re-labelling)", "choices": MARGINAL_ORDERS})
    relabels: int = field(default=100, metadata={"help": "times the labels are re-optimised over training", "min": 1})
    schedule_power: float = field(default=1.5, metadata={"help": "re-labelling at steps * linspace(0,1,n)^power (denser early)", "above": 0})
    sinkhorn: SinkhornConfig = field(default_factory=lambda: SinkhornConfig(lambda_=20.0, n_iters=2000))
    nce_weight: float = field(default=0.0, metadata={"help": "weight of the GDT contrastive loss added (0 = off)", "min": 0})
    batch_size: int = field(default=64, metadata={"help": "batch size of the re-labelling pass", "min": 1})

    def check(self) -> None:
        if self.marginal_order == "official" and self.sinkhorn.marginals == "zipf":
            raise ConfigError("official exists for sinkhorn.marginals=gauss only (the official code never "
                              "implemented zipf)", key="marginal_order")


def relabel_steps(total: int, n: int, power: float) -> list[int]:
    """Steps before which the labels are re-optimised: n points, denser at the start."""
    pts = np.round(total * np.linspace(0, 1, n) ** power).astype(int)
    return sorted({int(p) for p in pts if p < total})


ClusterHeads = LinearClusterHeads  # the name this module exported before the head forms


class SeLaViMethod(method.Method):
    def __init__(self, cfg: SeLaViConfig, shared: SharedSettings, gdt: GDTConfig):
        super().__init__()
        self.scfg, self.shared = cfg, shared
        if self.scfg.nce_weight > 0:
            check_views(shared.loader, gdt.loader_clip(), "selavi + gdt")
            self.objective = GDT(gdt)
        self.model = AVModel(shared.model)
        for mod in ("video", "audio"):
            if mod not in self.model.backbones:
                raise ValueError(f"selavi needs a {mod} backbone (model.{mod}.name)")
        self.video_heads = build_cluster_heads(self.scfg.head, self.model.backbones["video"].out_dim,
                                               self.scfg.heads, self.scfg.clusters)
        self.audio_heads = build_cluster_heads(self.scfg.head, self.model.backbones["audio"].out_dim,
                                               self.scfg.heads, self.scfg.clusters)
        self.schedule = relabel_steps(shared.steps, self.scfg.relabels, self.scfg.schedule_power)
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.register_buffer("labels", torch.zeros(0, self.scfg.heads, dtype=torch.long), persistent=False)
        self.last_relabel = -1
        self.marginal_draws: torch.Tensor | None = None  # [h, K] float64, official order only

    # -- labels ride in checkpoints as extra state -------------------------------------
    def get_extra_state(self):
        return {"keys": list(self.keys), "labels": self.labels.cpu(), "last_relabel": self.last_relabel,
                "marginal_draws": self.marginal_draws}

    def set_extra_state(self, state) -> None:
        self.set_labels(list(state["keys"]), state["labels"])
        self.last_relabel = int(state["last_relabel"])
        self.marginal_draws = state.get("marginal_draws")  # absent in checkpoints before the setting

    def set_labels(self, keys: list[str], labels: torch.Tensor) -> None:
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}
        self.labels = labels.to(self.labels.device)

    # -- forward ------------------------------------------------------------------------
    def head_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        out = self.model(batch, features=True)
        return self.video_heads(out["video_feat"]), self.audio_heads(out["audio_feat"]), out

    def forward(self, batch):
        lv, la, out = self.head_logits(batch)
        if lv.dim() == 4:  # [B, V, h, K]: every view learns its sample's label
            lv, la = lv.flatten(0, 1), la.flatten(0, 1)
            views = batch["video"].shape[1]
        else:
            views = 1
        idx = [self.index.get(k, -1) for k in batch["key"]]
        target = torch.full((len(idx), self.scfg.heads), -1, dtype=torch.long, device=lv.device)
        known = [i for i, j in enumerate(idx) if j >= 0]
        if known:
            target[known] = self.labels[[idx[i] for i in known]]
        target = target.repeat_interleave(views, 0)
        k = self.scfg.clusters
        ce_v = F.cross_entropy(lv.float().reshape(-1, k), target.reshape(-1), ignore_index=-1)
        ce_a = F.cross_entropy(la.float().reshape(-1, k), target.reshape(-1), ignore_index=-1)
        loss = 0.5 * (ce_v + ce_a)
        metrics = {"ce_video": ce_v.detach(), "ce_audio": ce_a.detach()}
        if self.scfg.nce_weight > 0:
            nce, parts = self.objective(out)
            loss = loss + self.scfg.nce_weight * nce
            metrics["nce"] = nce.detach()
            metrics.update({f"nce_{k}": v for k, v in parts.items()})
        return loss, metrics

    # -- re-labelling -----------------------------------------------------------------
    def on_step_start(self, ctx: StepContext) -> None:
        if ctx.step in self.schedule and self.last_relabel != ctx.step:
            self.relabel(ctx)
            self.last_relabel = ctx.step

    @torch.no_grad()
    def collect(self, ctx: StepContext, store: LogProbStore) -> dict:
        """One pass over the dataset (this rank's share): keys and true labels; the heads'
        log-probs [N, h, K] go to ``store`` as they come."""
        lcfg = replace(self.shared.loader, resampled=False, train=False, batch_size=self.scfg.batch_size,
                       clip=replace(self.shared.loader.clip, positions=1, copies=1, reverse=False))
        loader = ClipLoader(lcfg, ctx.info.rank, ctx.info.world_size)
        augment = DeviceAugment.from_loader(lcfg).to(ctx.info.device)
        was_training = self.training
        self.eval()
        dtype = next(self.parameters()).dtype
        keys, true = [], []
        for batch in loader:
            batch = augment(batch)
            b = {m: batch[m].to(dtype) for m in ("video", "audio")}
            lv, la, _ = self.head_logits(b)
            lv, la = lv[:, 0].float(), la[:, 0].float()  # the single view
            # geometric mean of the modalities' softmaxes, in log space
            store.append(0.5 * (lv.log_softmax(-1) + la.log_softmax(-1)))
            keys.extend(batch["key"])
            true.extend(batch["label"].tolist())
        self.train(was_training)
        return {"keys": keys, "true": true}

    def relabel(self, ctx: StepContext) -> dict:
        h, k = self.scfg.heads, self.scfg.clusters
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        with LogProbStore(Path(self.shared.out) / "labelling", h, k, f".rank{ctx.info.rank}") as store:
            data = self.collect(ctx, store)
            labels = torch.zeros(store.n, h, dtype=torch.long)
            if store.n or distributed:  # the solver is collective: every rank takes part
                for j in range(h):
                    target = self._official_marginals(j, store.head(j), distributed)
                    labels[:, j] = sinkhorn_knopp(store.head(j), self.scfg.sinkhorn, marginals=target).labels.cpu()
            conf = _confidence(store.head(0))
        mine = (data["keys"], labels, data["true"], conf)
        shards = [mine]
        if distributed:
            shards = [None] * dist.get_world_size()
            dist.all_gather_object(shards, mine)
        keys = [k for s in shards for k in s[0]]
        order = sorted(range(len(keys)), key=keys.__getitem__)  # rank-independent table
        all_labels = torch.cat([s[1] for s in shards])[order]
        self.set_labels([keys[i] for i in order], all_labels)
        self.true_labels = [[t for s in shards for t in s[2]][i] for i in order]
        self.confidence = torch.cat([s[3] for s in shards])[order]
        sizes = torch.bincount(all_labels[:, 0], minlength=self.scfg.clusters)
        log.info("step %d: re-labelled %d samples; head-0 cluster sizes %s", ctx.step, len(keys), sizes.tolist())
        return {"keys": self.keys, "labels": self.labels}

    def _official_marginals(self, head: int, logp: torch.Tensor, distributed: bool) -> torch.Tensor | None:
        """Head ``head``'s gauss targets in the official order (None: the solver's own
        marginals). The clusters' masses are the column sums of p_video * p_audio =
        exp(2 * log_p) over all ranks (official: over the gathered dataset, float64)."""
        if self.scfg.marginal_order != "official" or self.scfg.sinkhorn.marginals != "gauss":
            return None
        mass = torch.zeros(self.scfg.clusters + 1, dtype=torch.float64)
        rows = 1 << 16
        for s in range(0, len(logp), rows):
            mass[:-1] += logp[s:s + rows].double().mul(2).exp().sum(0)
        mass[-1] = len(logp)
        if distributed:
            red = mass.cuda() if dist.get_backend() == "nccl" else mass
            dist.all_reduce(red)
            mass = red.cpu()
        if self.marginal_draws is None:
            self.marginal_draws = official_gauss_draws(self.scfg.clusters, self.scfg.heads, int(mass[-1]),
                                                       self.scfg.sinkhorn.seed)
        self.marginal_draws[head], target = official_gauss_step(self.marginal_draws[head], mass[:-1])
        return target


def _confidence(logp: torch.Tensor, rows: int = 1 << 16) -> torch.Tensor:
    """Largest probability of each row of [N, K] log-probs, read in chunks."""
    parts = [logp[s:s + rows].float().softmax(-1).amax(-1) for s in range(0, len(logp), rows)]
    return torch.cat(parts) if parts else torch.zeros(0)


Config, Method = SeLaViConfig, SeLaViMethod


@dataclass
class RunConfig(TrainConfig):
    """A SeLaVi run: the engine's settings, ``selavi:`` and the ``gdt:`` loss it adds."""
    method: str = method_field("selavi")
    selavi: SeLaViConfig = field(default_factory=SeLaViConfig)
    gdt: GDTConfig = field(default_factory=GDTConfig)
