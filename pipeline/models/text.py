"""Text encoder for captions / ASR: token embedding, per-position MLP, masked pooling (MMV-style).

MMV embeds words (word2vec, 300-d), applies Linear -> ReLU per word and max-pools over
the sentence. Our loader gives byte tokens (0 = pad, 1..256 = byte + 1, then bos/eos),
where a single byte says little, so the per-position layer may look at ``ngram``
neighbouring tokens (a Conv1d; ngram = 1 is exactly MMV's per-token Linear).
Padding never reaches the pool: positions >= length (or id 0 when no lengths are given)
are masked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pipeline.loader.tokenizer import VOCAB_SIZE
from pipeline.errors import ConfigError

POOLS = ("max", "mean")


@dataclass
class TextEncoderConfig:
    vocab_size: int = field(default=VOCAB_SIZE, metadata={
        "help": "token ids are < vocab_size; id 0 is padding (byte tokenizer: 259)"})
    embed_dim: int = field(default=300, metadata={"help": "token embedding size (MMV: 300, word2vec)"})
    hidden: int = field(default=2048, metadata={"help": "per-position layer width = output dimension"})
    ngram: int = field(default=1, metadata={"help": "tokens seen by the per-position layer (odd; 1 = MMV)"})
    pool: str = field(default="max", metadata={"help": f"pooling over positions: {' | '.join(POOLS)}"})

    def check(self) -> None:
        if self.pool not in POOLS:
            raise ConfigError(f"text encoder: unknown pool {self.pool!r}; choose from {', '.join(POOLS)}")
        if self.ngram < 1 or self.ngram % 2 == 0:
            raise ConfigError(f"text encoder: ngram must be odd and >= 1, got {self.ngram}")
        if min(self.vocab_size, self.embed_dim, self.hidden) < 1:
            raise ConfigError("text encoder: vocab_size, embed_dim and hidden must be positive")


class TextEncoder(nn.Module):
    """ids [B, L] (0 = pad) and optional lengths [B] -> [B, out_dim]."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        self.proj = nn.Conv1d(cfg.embed_dim, cfg.hidden, cfg.ngram, padding=cfg.ngram // 2)
        self.out_dim = cfg.hidden

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"text encoder expects token ids [B, L], got shape {tuple(ids.shape)}")
        if lengths is None:
            mask = ids != 0
        else:
            mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        m = mask[:, None, :].to(self.embed.weight.dtype)
        x = self.embed(ids).transpose(1, 2) * m  # B, E, L; n-grams at the edge see zeros, not what follows
        x = torch.relu(self.proj(x))  # B, H, L (>= 0)
        if self.cfg.pool == "max":
            # activations are >= 0 after ReLU, so zeroing masked positions is a masked max
            # (and an empty text gives zeros instead of -inf)
            return (x * m).amax(dim=2)
        return (x * m).sum(dim=2) / m.sum(dim=2).clamp(min=1.0)


PRESETS: dict[str, TextEncoderConfig] = {
    "mmv": TextEncoderConfig(embed_dim=300, hidden=2048, ngram=1, pool="max"),
    "byte_cnn": TextEncoderConfig(embed_dim=128, hidden=512, ngram=5, pool="max"),
    "text_tiny": TextEncoderConfig(embed_dim=32, hidden=64, ngram=3, pool="max"),
}
