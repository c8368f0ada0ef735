"""Audio-visual localisation + self-labelled clustering (Afouras, Asano et al., CVPR 2022).

Why this shape: a frame's visual feature map is projected per location (1x1 convs) into
the audio embedding space; the cosine map against the clip's audio embedding is the
heatmap of the sounding object. The pair score is its max over locations (multiple
instance: the object is *somewhere*), trained with symmetric InfoNCE against every other
audio/frame of the global batch. Two classifier heads (on the heatmap-attended visual
embedding and on the audio embedding) are trained on Sinkhorn-Knopp self-labels of their
summed log-probabilities with prescribed cluster marginals; the clusters become the
classes of the pseudo boxes. Loss = lambda * L_NCE + (1 - lambda) * L_clust.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from pipeline.config import ConfigError, check_values
from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import build_audio, build_video
from pipeline.objectives.gather import gather_sizes, gather_with_grad, world
from pipeline.objectives.sinkhorn import SinkhornConfig, sinkhorn_knopp
from pipeline.train import method
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import SharedSettings


@dataclass
class AVLocConfig:
    visual: str = field(default="frame", metadata={
        "help": "frame: a 2D ResNet on the clip's centre frame (fine map, fast on CPU) | "
                "video: the model.video backbone's map averaged over time", "choices": ["frame", "video"]})
    frame_widths: list[int] = field(default_factory=lambda: [16, 32, 64], metadata={
        "help": "frame net: channels of the stem, then of each stride-2 stage; map stride = 2^len", "min": 1})
    frame_blocks: int = field(default=1, metadata={"help": "frame net: BasicBlocks per stage", "min": 1})
    clusters: int = field(default=10, metadata={"help": "K, clusters of the classifier heads (= detector classes)", "min": 2})
    lambda_: float = field(default=0.5, metadata={"help": "loss = lambda * L_NCE + (1 - lambda) * L_clust", "min": 0, "max": 1})
    temperature: float = field(default=0.07, metadata={"help": "InfoNCE temperature of the max-pooled cosine scores", "above": 0})
    attend_temperature: float = field(default=0.1, metadata={
        "help": "softmax temperature over locations when pooling the visual embedding for its head", "above": 0})
    cluster_start: int = field(default=0, metadata={
        "help": "optimizer step from which the clustering loss is on (localisation first)", "min": 0})
    sinkhorn: SinkhornConfig = field(default_factory=lambda: SinkhornConfig(
        lambda_=20.0, n_iters=200, native=False))

    def check(self) -> None:
        if not self.frame_widths:
            raise ConfigError("give at least one width", key="frame_widths")


class FrameNet(nn.Module):
    """[n, 3, H, W] -> [n, D, H/s, W/s], s = 2^len(widths): a stride-2 stem of widths[0]
    channels, then one stride-2 stage of BasicBlocks per further width. A small 2D ResNet
    keeping a fine map (stride 8 by default) so heatmaps resolve objects of a 64-128 px
    frame, without spending compute at full resolution."""

    def __init__(self, widths: list[int], blocks: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for w in widths[1:]:  # every stage after the stem halves the resolution
            for b in range(blocks):
                stride = 2 if b == 0 else 1
                down = None
                if stride != 1 or cin != w:
                    down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
                layers.append(BasicBlock(cin, w, stride, down))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim, self.stride = widths[-1], 2 ** len(widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


def flat_views(x: torch.Tensor, sample_dims: int) -> torch.Tensor:
    """[B, V, ...] or [B, ...] -> [B*V, ...]: every view (frame + its audio) is a sample."""
    return x.reshape(-1, *x.shape[x.dim() - sample_dims:])


class AVLocMethod(method.Method):
    """``forward(batch) -> (loss, metrics)``; ``localise(batch)`` gives heatmaps and clusters."""

    def __init__(self, cfg: AVLocConfig, shared: SharedSettings):
        super().__init__()
        self.cfg = c = cfg
        check_values(c, prefix="avloc.")  # also when the config was built in code
        model = shared.model
        emb = model.embed_dim
        if c.visual == "frame":
            self.visual = FrameNet(list(c.frame_widths), c.frame_blocks)
        else:
            self.visual = build_video(model.video.name, **dict(model.video.args))
        d = self.visual.out_dim
        self.vproj = nn.Sequential(nn.Conv2d(d, d, 1), nn.BatchNorm2d(d), nn.ReLU(inplace=True),
                                   nn.Conv2d(d, emb, 1))
        self.audio = build_audio(model.audio.name, **dict(model.audio.args))
        self.aproj = ProjectionHead(self.audio.out_dim, emb, model.head_hidden or None, normalize=True)
        self.vhead, self.ahead = nn.Linear(emb, c.clusters), nn.Linear(emb, c.clusters)
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)

    def on_step_start(self, ctx) -> None:
        self.step.fill_(ctx.step)

    # ---- embeddings -------------------------------------------------------------------
    def visual_map(self, video: torch.Tensor) -> torch.Tensor:
        """Clips [n, C, T, H, W] -> unit embeddings per location [n, E, h, w]."""
        if self.cfg.visual == "frame":
            fmap = self.visual(video[:, :, video.shape[2] // 2])
        else:
            fmap = self.visual.forward_features(video).mean(2)
        return F.normalize(self.vproj(fmap), dim=1)

    def embed(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(visual maps [n, E, h, w], audio embeddings [n, E]) with views flattened."""
        vmap = self.visual_map(flat_views(batch["video"], 4))
        aud = self.aproj(self.audio(flat_views(batch["audio"], 3)))
        return vmap, aud

    def attend(self, vmap: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        """Visual embedding pooled with softmax(heatmap / t) over locations: the sounding
        object's appearance rather than the whole frame's (distractors stay out)."""
        w = torch.softmax(heat.flatten(1) / self.cfg.attend_temperature, dim=1)
        return F.normalize(torch.einsum("nel,nl->ne", vmap.flatten(2), w), dim=1)

    # ---- training ---------------------------------------------------------------------
    def nce(self, vmap, aud):
        """Symmetric InfoNCE on max-over-locations cosine scores, negatives from every rank
        (local rows against the gathered batch; scaled as ``objectives.nce.info_nce``)."""
        n = aud.shape[0]
        sizes = gather_sizes(n, aud.device)
        vflat = vmap.flatten(2)                                   # [n, E, L]
        v_all, offset = gather_with_grad(vflat, sizes)
        a_all, _ = gather_with_grad(aud, sizes)
        s_va = torch.einsum("nel,me->nml", vflat, a_all).amax(-1) / self.cfg.temperature
        s_av = torch.einsum("ne,mel->nml", aud, v_all).amax(-1) / self.cfg.temperature
        labels = torch.arange(n, device=aud.device) + offset
        total = sum(sizes)
        loss = 0.5 * (F.cross_entropy(s_va, labels, reduction="sum")
                      + F.cross_entropy(s_av, labels, reduction="sum")) * (world()[1] / total)
        with torch.no_grad():
            m = {"acc_v2a": (s_va.argmax(1) == labels).float().mean(),
                 "acc_a2v": (s_av.argmax(1) == labels).float().mean()}
        return loss, m

    def heads(self, vmap, aud):
        heat = torch.einsum("nehw,ne->nhw", vmap, aud)
        return self.vhead(self.attend(vmap, heat)), self.ahead(aud), heat

    def self_labels(self, v_logits, a_logits) -> torch.Tensor:
        """Sinkhorn labels of the summed head log-probs over the global batch."""
        log_p = 0.5 * (F.log_softmax(v_logits.detach().float(), 1) + F.log_softmax(a_logits.detach().float(), 1))
        return sinkhorn_knopp(log_p, self.cfg.sinkhorn).labels

    def forward(self, batch):
        vmap, aud = self.embed(batch)
        l_nce, metrics = self.nce(vmap, aud)
        v_logits, a_logits, _ = self.heads(vmap, aud)
        y = self.self_labels(v_logits, a_logits)
        l_clust = 0.5 * (F.cross_entropy(v_logits, y) + F.cross_entropy(a_logits, y))
        lam = self.cfg.lambda_ if int(self.step) >= self.cfg.cluster_start else 1.0
        loss = lam * l_nce + (1 - lam) * l_clust
        with torch.no_grad():
            agree = (v_logits.argmax(1) == a_logits.argmax(1)).float().mean()
            used = torch.bincount(y, minlength=self.cfg.clusters).gt(0).sum().float()
        metrics.update(loss_nce=l_nce.detach(), loss_clust=l_clust.detach(), head_agree=agree,
                       clusters_used=used)
        return loss, metrics

    # ---- inference --------------------------------------------------------------------
    @torch.no_grad()
    def localise(self, batch) -> dict[str, torch.Tensor]:
        """Heatmaps [n, h, w] (cosine, own audio), cluster = argmax of the summed head
        scores [n], and both heads' logits, for every view of the batch (flattened)."""
        vmap, aud = self.embed(batch)
        v_logits, a_logits, heat = self.heads(vmap, aud)
        scores = F.log_softmax(v_logits, 1) + F.log_softmax(a_logits, 1)
        return {"heat": heat, "cluster": scores.argmax(1), "v_logits": v_logits,
                "a_logits": a_logits}


Config, Method = AVLocConfig, AVLocMethod


@dataclass
class RunConfig(TrainConfig):
    """An audio-visual localisation run (detection's first step): the engine's settings plus ``avloc:``."""
    method: str = method_field("avloc")
    avloc: AVLocConfig = field(default_factory=AVLocConfig)
