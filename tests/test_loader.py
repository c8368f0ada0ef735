"""The clip loader on real shards: exact frames, views, splitting, resume, corrupt data."""
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import torch  # noqa: F401
import av
import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.io.wav import encode_wav, read_window
from pipeline.loader import tokenizer
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards
from pipeline.loader.decode import decode_decord, decode_pyav, get_decoder
from pipeline.errors import InputError

HERE = Path(__file__).parent


def first_sample(shards: Path) -> dict:
    path = expand_shards(str(shards))[0]
    members = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            key, ext = m.name.split(".", 1)
            members.setdefault(key, {})[ext] = tf.extractfile(m).read()
    key = sorted(members)[0]
    return {"__key__": key, **members[key]}


def loader(shards, *overrides):
    return ClipLoader(load_config(LoaderConfig, [], [f"shards={shards}", *overrides]))


def test_decoders_give_exact_frames(synth_shards):
    raw = first_sample(synth_shards)
    with av.open(io.BytesIO(raw["mp4"])) as c:  # reference: every frame, in order
        ref = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    idx = [0, 7, 8, 30, len(ref) - 1, 13]
    for decode in (decode_decord, decode_pyav):
        got = decode(raw["mp4"], idx)
        assert got.shape == (len(idx), *ref[0].shape)
        for g, i in zip(got, idx):
            assert np.abs(g.astype(int) - ref[i].astype(int)).mean() < 1.0, (decode.__name__, i)
        # neighbouring frames differ (moving objects), so an off-by-one would be caught
    assert np.abs(ref[7].astype(int) - ref[8].astype(int)).mean() > 0.5


def test_pyav_backend_keeps_exact_frames_across_videos_of_other_sizes(synth_shards):
    """The loader's PyAV decoder keeps one RGB converter; a real video of another size and
    codec in between must not leave it converting with the wrong geometry."""
    decode = get_decoder("pyav")
    synth = first_sample(synth_shards)["mp4"]
    real = (HERE / "data" / "lego_toy.mp4").read_bytes()
    for data in (synth, real, synth):
        with av.open(io.BytesIO(data)) as c:
            ref = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][:12]
        got = decode(data, [3, 11, 4])
        assert np.array_equal(got, np.stack([ref[3], ref[11], ref[4]]))
        assert np.array_equal(got, decode_decord(data, [3, 11, 4]))


def test_wav_window_matches_full_read():
    rate = 16000
    wave = np.sin(np.arange(3 * rate) * 0.01).astype(np.float32) * 0.5
    data = encode_wav(wave, rate)
    win = read_window(data, 1.25, 0.5, rate)
    assert np.allclose(win, wave[20000:28000], atol=1e-4)
    edge = read_window(data, 2.8, 0.5, rate)  # past the end: zero padded
    assert np.allclose(edge[: int(0.2 * rate)], wave[-int(0.2 * rate):], atol=1e-4)
    assert np.all(edge[int(0.2 * rate) + 1:] == 0)
    with pytest.raises(ValueError, match="8000 Hz"):
        read_window(data, 0, 1, 8000)
    with pytest.raises(ValueError, match="RIFF"):
        read_window(b"not a wav at all", 0, 1)


def test_wav_window_reads_stereo_and_skips_other_chunks():
    """Channels are averaged, and chunks before the samples (LIST, odd-sized) are stepped over."""
    import struct
    rate, left = 8000, np.arange(4000, dtype="<i2")
    right = (-left) // 2
    pcm = np.stack([left, right], axis=1).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 2, rate, rate * 4, 4, 16)
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd size: one pad byte
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", len(pcm)) + pcm
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    win = read_window(data, 0.25, 0.125, rate)
    expect = (left[2000:3000].astype(np.float32) + right[2000:3000]) / 2 / 32768.0
    assert np.allclose(win, expect, atol=1e-7)


def test_batch_contents_and_views(synth_shards, synth_corpus):
    ld = loader(synth_shards, "batch_size=4", "workers=0", "epoch_batches=2", "clip.positions=2",
                "clip.reverse=true", "clip.frames=6", "video.size=48", "audio.seconds=1.0")
    batch = next(iter(ld))
    assert batch["video"].shape == (4, 4, 3, 6, 48, 48)  # B, V=(2 positions x 2 directions)
    assert batch["audio"].shape == (4, 4, 1, 40, 101)
    assert batch["boxes"].shape == (4, 4, 6, 4)
    # reversed views are the forward views flipped in time, in both modalities
    assert torch.equal(batch["video"][:, 1], batch["video"][:, 0].flip(2))
    assert torch.equal(batch["audio"][:, 1], batch["audio"][:, 0].flip(-1))
    # two positions of the same video are different clips
    assert not torch.equal(batch["video"][:, 0], batch["video"][:, 2])
    rows = {Path(json.loads(l)["path"]).stem: json.loads(l)
            for l in (synth_corpus / "manifest.jsonl").read_text().splitlines()}
    classes = sorted({r["label"] for r in rows.values()})
    captions = {r["caption"] for r in rows.values()}
    for i in range(4):
        text = tokenizer.decode(batch["text"][i][: batch["text_len"][i]])
        assert any(c.encode()[:62] == text.encode() for c in captions)  # 64 tokens: bos + 62 + eos
        assert 0 <= int(batch["label"][i]) < len(classes)
    assert torch.isfinite(batch["boxes"]).any()


def test_audio_without_spec_augment_bands(synth_shards):
    """No SpecAugment bands configured: nothing is masked, and nothing breaks."""
    ld = loader(synth_shards, "batch_size=2", "workers=0", "epoch_batches=1", "clip.frames=2",
                "video.size=32", "audio.freq_masks=0", "audio.time_masks=0")
    audio = next(iter(ld))["audio"]
    assert audio.shape == (2, 1, 1, 40, 101) and torch.isfinite(audio).all()
    assert (audio == 0).float().mean() < 0.01  # standardised log-mels: zeros only by chance


def test_eval_mode_is_deterministic_and_covers_everything(synth_shards):
    keys = []
    for rank in range(2):
        ld = ClipLoader(load_config(LoaderConfig, [], [f"shards={synth_shards}", "resampled=false",
                                                      "train=false", "workers=2", "batch_size=5",
                                                      "clip.frames=4", "video.size=32"]),
                        rank=rank, world_size=2)
        got = [k for b in ld for k in b["key"]]
        keys.append(got)
    assert not set(keys[0]) & set(keys[1])
    assert len(keys[0]) + len(keys[1]) == 24


def test_resume_in_a_new_process_is_exact(synth_shards, tmp_path):
    probe = [sys.executable, str(HERE / "loader_probe.py"), str(synth_shards)]
    full = json.loads(subprocess.run(probe + ["9", str(tmp_path / "s_full.json")],
                                     capture_output=True, text=True, check=True).stdout)
    first = json.loads(subprocess.run(probe + ["4", str(tmp_path / "s4.json")],
                                      capture_output=True, text=True, check=True).stdout)
    rest = json.loads(subprocess.run(probe + ["5", str(tmp_path / "s4.json"), str(tmp_path / "s9.json")],
                                     capture_output=True, text=True, check=True).stdout)
    assert first + rest == full  # 9 batches cross an epoch boundary (6 per epoch)
    assert json.load(open(tmp_path / "s9.json")) == json.load(open(tmp_path / "s_full.json"))


def test_seeds_and_epochs_change_the_stream(synth_shards):
    def keys(seed, epochs=1):
        ld = loader(synth_shards, "batch_size=4", "workers=0", "epoch_batches=3", f"seed={seed}",
                    "clip.frames=4", "video.size=32")
        return [[k for b in ld for k in b["key"]] for _ in range(epochs)]
    a, b = keys(1, epochs=2), keys(1)
    assert a[0] == b[0] and a[0] != a[1] and keys(2)[0] != a[0]


def test_corrupt_shards_and_samples_are_skipped_and_counted(synth_shards, tmp_path):
    good = expand_shards(str(synth_shards))[0]
    data = Path(good).read_bytes()
    (tmp_path / "a-truncated.tar").write_bytes(data[: len(data) // 2 + 100])
    with tarfile.open(good) as src, tarfile.open(tmp_path / "b-badvideo.tar", "w") as dst:
        for m in src.getmembers():
            payload = src.extractfile(m).read()
            if m.name.endswith(".mp4"):
                payload = b"\x00garbage" * 50
            m.size = len(payload)
            dst.addfile(m, io.BytesIO(payload))
    (tmp_path / "c-garbage.tar").write_bytes(b"not a tar at all" * 100)
    ld = loader(tmp_path, "resampled=false", "workers=0", "batch_size=2", "clip.frames=4",
                "video.size=32", "shuffle_buffer=1")
    batches = list(ld)
    n_ok = sum(len(b["key"]) for b in batches)
    assert 0 < n_ok < 6  # only the intact first half of the truncated shard decodes
    assert ld.skipped_total >= 6 + 1  # six bad videos plus the unreadable shard(s)


def test_missing_shards_are_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no shards found"):
        loader(tmp_path / "nothing-*.tar")
    with pytest.raises(InputError, match="missing"):
        loader(str(tmp_path / "s-{000000..000002}.tar"))


def test_a_setting_no_sample_meets_is_one_clear_error(synth_shards):
    """Every sample failing (here: the shards hold 16 kHz audio) is not corrupt data to skip
    forever in resampled mode, but one error naming the cause."""
    ld = loader(synth_shards, "workers=0", "batch_size=2", "audio.rate=8000", "clip.frames=4",
                "video.size=32")
    with pytest.raises(InputError, match="none of the first 1000 samples.*expects 8000 Hz"):
        next(iter(ld))


def test_worker_batches_stay_intact_while_buffers_are_reused(synth_shards):
    """Worker batches come through reused shared buffers: a batch kept by the caller must
    not change when later batches reuse its buffer."""
    ld = loader(synth_shards, "workers=2", "batch_size=2", "epoch_batches=16", "prefetch=1",
                "clip.frames=4", "video.size=32")
    kept = [(b["video"], b["video"].double().sum().item()) for b in ld]
    assert len(kept) == 16
    assert all(v.double().sum().item() == s for v, s in kept)
    assert len({s for _, s in kept}) == 16


def test_streamed_batches_reuse_lent_slots_and_kept_ones_stay_intact(synth_shards):
    """A caller who lets go of each batch gets views of the same few slots back (no copy,
    no new memory); a batch it keeps meanwhile is not overwritten."""
    ld = loader(synth_shards, "workers=2", "batch_size=2", "epoch_batches=24", "prefetch=1",
                "clip.frames=4", "video.size=32")
    places, kept = set(), []
    for i, b in enumerate(ld):
        places.add(b["video"].data_ptr())
        if i % 8 == 0:
            kept.append((b["video"], b["video"].double().sum().item()))
    assert len(places) <= 2 * (1 + 3)  # workers x slots (prefetch + 3)
    assert all(v.double().sum().item() == s for v, s in kept)


def test_loader_benchmark_reports_both_rates_side_by_side(synth_shards, tmp_path):
    """`bench loader` on real shards: the keys the issue names, ratios from the peer."""
    from pipeline.bench import loader as bench
    out = tmp_path / "bench.json"
    cfg = load_config(bench.Config, [], [f"shards={synth_shards}", "workers=0,1,2", "batches=2",
                                         "batch_size=4", "size=32", "frames=4", "raw_clips=8",
                                         "raw_seconds=0.3", f"json={out}"])
    res = bench.run(cfg)
    assert json.loads(out.read_text()) == res
    assert {"clips_per_s", "raw_decode_clips_per_s", "ratio", "per_workers"} <= set(res)
    for w, row in res["per_workers"].items():
        assert row["clips_per_s"] > 0 and row["raw_clips_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["clips_per_s"] / row["raw_limit_clips_per_s"], abs=2e-3)
        assert row["ratio_to_one_core"] == pytest.approx(
            row["clips_per_s"] / (row["raw_clips_per_s"] * max(int(w), 1)), abs=2e-3)
    # two decoders at once do more than one, and no more than twice as much
    assert 1.0 < res["raw_scaling_1_to_2"] <= 2.2
