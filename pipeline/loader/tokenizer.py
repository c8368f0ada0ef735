"""Byte-level tokenizer: needs no download and no vocabulary file, works for any language."""
from __future__ import annotations

import numpy as np
import torch

PAD, BOS, EOS = 0, 257, 258
VOCAB_SIZE = 259  # 0 = pad, 1..256 = UTF-8 bytes + 1, 257 = bos, 258 = eos


def encode(text: str, max_len: int) -> tuple[np.ndarray, int]:
    """Token ids padded to ``max_len`` (bos + bytes + eos, truncated) and the true length.
    int16 holds the vocabulary: the ids cross from the loader's workers at a quarter of
    int64's bytes and become int64 on the device."""
    body = np.frombuffer(text.encode("utf-8")[: max_len - 2], np.uint8)
    out = np.zeros(max_len, np.int16)
    out[0], out[1:1 + len(body)], out[1 + len(body)] = BOS, body.astype(np.int16) + 1, EOS
    return out, len(body) + 2


def decode(ids: torch.Tensor) -> str:
    data = bytes(int(i) - 1 for i in ids.tolist() if 1 <= int(i) <= 256)
    return data.decode("utf-8", errors="replace")
