"""The detector: torchvision's Faster R-CNN over K cluster classes (+ background).

Why torchvision: the paper trains a standard Faster R-CNN on the pseudo boxes; nothing
about it is method-specific, so the stock RPN/ROI heads are used and only the backbone is
chosen by scale. ``tiny`` is the AV model's 2D frame net (stride 8, one feature map), so
the detector can start from the localisation model's visual weights and trains on a CPU;
``mobilenet_v3`` / ``resnet50`` are torchvision's FPN models for a cluster (always built
with ``weights=None, weights_backbone=None``: no download, no supervised pre-training).
Inference takes images only: no audio.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models import detection
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from tqdm import tqdm

from pipeline.errors import ConfigError, InputError
from pipeline.io.atomic import save_safetensors, write_json
from pipeline.train.methods.avloc import FrameNet

BACKBONES = ("tiny", "mobilenet_v3", "resnet50")


@dataclass
class DetectorConfig:
    backbone: str = field(default="tiny", metadata={"help": f"{' | '.join(BACKBONES)}", "choices": BACKBONES})
    widths: list[int] = field(default_factory=lambda: [16, 32, 64], metadata={
        "help": "tiny: frame-net widths (stride 2^len); equal to avloc.frame_widths allows init_from_av", "min": 1})
    blocks: int = field(default=1, metadata={"help": "tiny: BasicBlocks per stage", "min": 1})
    init_from_av: bool = field(default=True, metadata={
        "help": "tiny: start from the AV model's frame net when the architectures match"})
    image_size: int = field(default=0, metadata={"help": "resize images to this (min and max side); 0 = keep the frame size", "min": 0})
    anchor_sizes: list[int] = field(default_factory=lambda: [16, 32, 64], metadata={"help": "tiny: anchor sizes, pixels", "min": 1})
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0], metadata={"help": "tiny: anchor aspect ratios", "above": 0})
    representation: int = field(default=256, metadata={"help": "tiny: width of the box head's MLP", "min": 1})
    rpn_samples: int = field(default=128, metadata={"help": "RPN anchors sampled per image", "min": 1})
    roi_samples: int = field(default=64, metadata={"help": "ROI proposals sampled per image (training)", "min": 1})
    proposals: list[int] = field(default_factory=lambda: [200, 100], metadata={
        "help": "RPN proposals kept after NMS per image, [training, inference] (2x before NMS); "
                "torchvision's 2000/1000 are for 800-px images with many objects", "min": 1})
    steps: int = field(default=600, metadata={"help": "training steps", "min": 1})
    batch_size: int = field(default=8, metadata={"help": "images per step", "min": 1})
    lr: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate (warm-up, cosine)", "above": 0})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay", "min": 0})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps", "min": 0})
    flip: float = field(default=0.5, metadata={"help": "horizontal flip probability (training)", "min": 0, "max": 1})
    score_thresh: float = field(default=0.01, metadata={"help": "keep detections scoring above this", "min": 0, "max": 1})
    detections_per_img: int = field(default=20, metadata={"help": "detections kept per image", "min": 1})
    seed: int = field(default=0, metadata={"help": "initialisation and sampling seed", "min": 0})


def build_detector(cfg: DetectorConfig, n_clusters: int, mean, std, frame_size: int) -> detection.FasterRCNN:
    """Faster R-CNN with ``n_clusters`` + 1 classes; label 0 is background, cluster c is c + 1.
    Images are resized to ``cfg.image_size`` (0: ``frame_size``, i.e. kept as they are)."""
    if cfg.backbone not in BACKBONES:
        raise ConfigError(f"detector.backbone: {cfg.backbone!r}; choose from {', '.join(BACKBONES)}")
    (p_train, p_test), size = cfg.proposals, cfg.image_size or frame_size
    common = dict(num_classes=n_clusters + 1, image_mean=list(mean), image_std=list(std),
                  rpn_pre_nms_top_n_train=2 * p_train, rpn_post_nms_top_n_train=p_train,
                  rpn_pre_nms_top_n_test=2 * p_test, rpn_post_nms_top_n_test=p_test,
                  rpn_batch_size_per_image=cfg.rpn_samples, box_batch_size_per_image=cfg.roi_samples,
                  box_score_thresh=cfg.score_thresh, box_detections_per_img=cfg.detections_per_img,
                  min_size=size, max_size=size)
    if cfg.backbone == "mobilenet_v3":
        return detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, **common)
    if cfg.backbone == "resnet50":
        return detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **common)
    backbone = FrameNet(list(cfg.widths), cfg.blocks)
    backbone.out_channels = backbone.out_dim
    c = backbone.out_dim
    return detection.FasterRCNN(
        backbone, rpn_anchor_generator=AnchorGenerator((tuple(cfg.anchor_sizes),), (tuple(cfg.aspect_ratios),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(c * 49, cfg.representation),
        box_predictor=FastRCNNPredictor(cfg.representation, n_clusters + 1),
        **{k: v for k, v in common.items() if k != "num_classes"})


def init_backbone_from_av(model: detection.FasterRCNN, av_state: dict[str, torch.Tensor]) -> int:
    """Copy the AV model's ``visual.*`` weights into the tiny backbone; returns tensors copied."""
    own = model.backbone.state_dict()
    picked = {k[len("visual."):]: v for k, v in av_state.items() if k.startswith("visual.")}
    if set(picked) != set(own) or any(picked[k].shape != own[k].shape for k in own):
        return 0
    model.backbone.load_state_dict(picked)
    return len(picked)


def _targets(boxes: list[np.ndarray], clusters: list[int], size: tuple[int, int]) -> list[dict]:
    h, w = size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    return [{"boxes": torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4) * scale,
             "labels": torch.full((len(b),), int(c) + 1, dtype=torch.int64)}
            for b, c in zip(boxes, clusters)]


def train_detector(model: detection.FasterRCNN, images: torch.Tensor, boxes: list[np.ndarray],
                   clusters: list[int], cfg: DetectorConfig) -> list[dict]:
    """Train on uint8 images [N, 3, H, W] with normalised pseudo boxes; returns loss rows."""
    if len(images) == 0:
        raise InputError("detector: no training frames")
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / max(cfg.warmup_steps, 1), 1.0)
                                              * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    targets = _targets(boxes, clusters, tuple(images.shape[-2:]))
    model.train()
    history = []
    bar = tqdm(range(cfg.steps), desc="detector", unit="step")
    for step in bar:
        idx = torch.randint(len(images), (cfg.batch_size,), generator=gen).tolist()
        flips = (torch.rand(cfg.batch_size, generator=gen) < cfg.flip).tolist()
        imgs, tgts = [], []
        for i, f in zip(idx, flips):
            img, t = images[i].float() / 255, dict(targets[i])
            if f:
                w = img.shape[-1]
                img, b = img.flip(-1), t["boxes"].clone()
                b[:, [0, 2]] = w - t["boxes"][:, [2, 0]]
                t["boxes"] = b
            imgs.append(img)
            tgts.append(t)
        losses = model(imgs, tgts)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        sched.step()
        row = {"step": step + 1, "loss": loss.item(), **{k: v.item() for k, v in losses.items()}}
        history.append(row)
        if (step + 1) % 20 == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}")
    model.eval()
    return history


@torch.no_grad()
def predict(model: detection.FasterRCNN, images: torch.Tensor, batch_size: int = 32) -> list[dict]:
    """Detections per uint8 image: boxes in pixels [m, 4], scores [m], cluster ids [m]."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        for det in model([im.float() / 255 for im in images[s:s + batch_size]]):
            out.append({"boxes": det["boxes"], "scores": det["scores"], "labels": det["labels"] - 1})
    return out


@torch.no_grad()
def classify_boxes(model: detection.FasterRCNN, images: torch.Tensor, boxes: torch.Tensor,
                   batch_size: int = 32) -> torch.Tensor:
    """Cluster probabilities [n, K] of one given box per image (normalised [n, 4]), from
    the ROI head alone: names clusters from labelled boxes without running the RPN."""
    model.eval()
    h, w = images.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    out = []
    for s in range(0, len(images), batch_size):
        imgs = [im.float() / 255 for im in images[s:s + batch_size]]
        batch, _ = model.transform(imgs)
        feats = model.backbone(batch.tensors)
        feats = {"0": feats} if isinstance(feats, torch.Tensor) else feats
        props = []
        for b, (ih, iw) in zip(boxes[s:s + batch_size], batch.image_sizes):
            props.append((b * scale * torch.tensor([iw / w, ih / h, iw / w, ih / h]))[None])
        x = model.roi_heads.box_head(model.roi_heads.box_roi_pool(feats, props, batch.image_sizes))
        logits, _ = model.roi_heads.box_predictor(x)
        out.append(torch.softmax(logits[:, 1:], 1))  # background dropped: which cluster, given an object
    return torch.cat(out) if out else torch.zeros(0, model.roi_heads.box_predictor.cls_score.out_features - 1)


def save_detector(model: nn.Module, folder: Path, cfg: DetectorConfig, n_clusters: int, mean, std,
                  frame_size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(folder / "detector.safetensors",
                     {k: v.detach().contiguous() for k, v in model.state_dict().items()})
    meta = {"config": asdict(cfg), "n_clusters": n_clusters, "mean": list(mean), "std": list(std),
            "frame_size": frame_size}
    write_json(folder / "detector.json", meta)
    return folder / "detector.safetensors"


def load_detector(folder: Path) -> tuple[detection.FasterRCNN, dict]:
    """The detector saved by ``save_detector`` (eval mode) and its metadata."""
    meta_path, weights = folder / "detector.json", folder / "detector.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise InputError(f"{folder}: no detector.json/detector.safetensors (run the detector step first)")
    meta = json.loads(meta_path.read_text())
    model = build_detector(DetectorConfig(**meta["config"]), meta["n_clusters"], meta["mean"], meta["std"],
                           meta["frame_size"])
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), meta
