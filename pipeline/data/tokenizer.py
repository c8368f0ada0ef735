"""Byte-level tokenizer: needs no download and no vocabulary file, works for any language."""
from __future__ import annotations

import torch

PAD, BOS, EOS = 0, 257, 258
VOCAB_SIZE = 259  # 0 = pad, 1..256 = UTF-8 bytes + 1, 257 = bos, 258 = eos


def encode(text: str, max_len: int) -> tuple[torch.Tensor, int]:
    """Token ids padded to ``max_len`` (bos + bytes + eos, truncated) and the true length."""
    ids = [BOS] + [b + 1 for b in text.encode("utf-8")][: max_len - 2] + [EOS]
    out = torch.zeros(max_len, dtype=torch.long)
    out[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out, len(ids)


def decode(ids: torch.Tensor) -> str:
    data = bytes(int(i) - 1 for i in ids.tolist() if 1 <= int(i) <= 256)
    return data.decode("utf-8", errors="replace")
