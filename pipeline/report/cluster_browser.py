"""Cluster browser: one offline HTML page, clusters sorted by size, each with its most
confident clips as thumbnails with audio players, and purity when labels exist."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.io.atomic import write_text
from pipeline.io.wav import encode_wav, read_window
from pipeline.loader.lookup import read_samples
from pipeline.loader.decode import get_decoder
from pipeline.report.html import array_png, audio_tag, esc, page, png_tag


def _thumb(sample: dict) -> str:
    meta = json.loads(sample["json"])
    frame = get_decoder("torchcodec")(sample["mp4"], [int(meta["n_frames"]) // 2])[0].numpy()
    tag = png_tag(array_png(frame), width=96)
    if "wav" in sample:
        seconds = float(meta.get("duration", int(meta["n_frames"]) / float(meta["fps"])))
        wav = read_window(sample["wav"], seconds / 2 - 1.0, 2.0)
        tag += "<br>" + audio_tag(encode_wav(wav, int(meta.get("audio_rate", 16000))))
    return tag


def write_cluster_browser(path: Path, shards: str, keys: list[str], clusters: np.ndarray,
                          confidence: np.ndarray, true: list[int] | None, class_names: list[str],
                          per_cluster: int = 6, title: str = "Clusters") -> Path:
    clusters = np.asarray(clusters)
    sizes = Counter(clusters.tolist())
    picks: dict[int, list[int]] = {}
    for c in sizes:
        members = np.flatnonzero(clusters == c)
        picks[c] = members[np.argsort(-confidence[members])][:per_cluster].tolist()
    samples = read_samples(shards, [keys[i] for idx in picks.values() for i in idx])
    name = (lambda y: class_names[y] if 0 <= y < len(class_names) else str(y))
    body = [f"<h1>{esc(title)}</h1><p class='muted'>{len(keys)} clips in {len(sizes)} clusters; "
            "per cluster its most confident clips (middle frame, 2 s of audio).</p>"]
    for c, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        head = f"<h2>cluster {c} &middot; {size} clips"
        if true is not None and min(true) >= 0:
            members = [true[i] for i in np.flatnonzero(clusters == c)]
            top, count = Counter(members).most_common(1)[0]
            head += f" &middot; purity {count / size:.2f} (mostly {esc(name(top))})"
        body.append(head + "</h2><div class='grid'>")
        for i in picks[c]:
            k = keys[i]
            caption = esc(k) + (f"<br>{esc(name(true[i]))}" if true is not None else "")
            thumb = _thumb(samples[k]) if k in samples else "<span class='muted'>missing</span>"
            body.append(f"<div class='card'>{thumb}<br>{caption}<br>conf {confidence[i]:.2f}</div>")
        body.append("</div>")
    write_text(path, page(title, "".join(body)))
    return path
