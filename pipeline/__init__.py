"""Distributed self-supervised audio-visual video pretraining."""
__version__ = "0.1.0"


def load_backbone(folder, with_head: bool = False, device: str = "cpu"):
    """Load an exported backbone folder as a plain ``torch.nn.Module`` (see pipeline.export)."""
    from pipeline.models.load import load_backbone as _load
    return _load(folder, with_head=with_head, device=device)
