"""What the contrastive methods (gdt, clip, simclr) share: a model, an objective on its
embeddings, and a check that the loader produces the views the objective expects."""
from __future__ import annotations

from torch import nn

from pipeline.errors import ConfigError
from pipeline.loader.loader import LoaderConfig
from pipeline.models.av_model import AVModel, ModelConfig
from pipeline.train import method


def check_views(loader: LoaderConfig, want: dict, who: str) -> None:
    """The loader must produce the views the objective expects; say which keys to set."""
    have = {k: getattr(loader.clip, k) for k in want}
    if have != want:
        fix = " ".join(f"loader.clip.{k}={str(v).lower()}" for k, v in want.items() if have[k] != v)
        raise ConfigError(f"{who}: the loader's views {have} do not match the objective; set {fix}")


class Contrastive(method.Method):
    """``forward(batch)``: the objective on the model's embeddings of the batch."""

    def __init__(self, model: ModelConfig, objective: nn.Module):
        super().__init__()
        self.model = AVModel(model)
        self.objective = objective

    def forward(self, batch):
        return self.objective(self.model(batch))
