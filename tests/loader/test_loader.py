"""The clip loader on real shards: the batch contract, views, splitting, resume in new
processes, corrupt data, settings under which no batch could come, modalities."""
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, load_config
from pipeline.errors import InputError
from pipeline.io.wav import pcm_wav
from pipeline.loader import tokenizer
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards

HERE = Path(__file__).resolve().parents[1]  # tests/: the shared probes
TINY = ["clip.frames=4", "video.size=32"]


def loader(shards, *overrides, rank=0, world_size=1):
    return ClipLoader(load_config(LoaderConfig, [], [f"shards={shards}", *overrides]), rank, world_size)


def rewrite_tar(src: str, dst: Path, keep=lambda name: True, change=lambda name, data: data) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            if not keep(m.name):
                continue
            data = change(m.name, tin.extractfile(m).read())
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_batch_contract_and_views(synth_shards, synth_corpus):
    """Workers ship uint8 video and int16 audio of the source views, small fields as
    numpy; the device step makes every view, reversed ones included."""
    ld = loader(synth_shards, "batch_size=4", "workers=2", "epoch_batches=2", "clip.positions=2",
                "clip.reverse=true", "clip.frames=6", "video.size=48", "audio.seconds=1.0")
    raw = next(iter(ld))
    tensors = {k for k, v in raw.items() if isinstance(v, torch.Tensor)}
    assert tensors == {"video", "wave"}
    # one block of shared memory: the training process pays one handshake per batch
    assert raw["video"].untyped_storage().data_ptr() == raw["wave"].untyped_storage().data_ptr()
    assert raw["video"].dtype == torch.uint8 and raw["video"].shape == (4, 2, 6, 48, 48, 3)
    assert raw["wave"].dtype == torch.int16 and raw["wave"].shape == (4, 2, 16000)
    small = sum(v.nbytes for k, v in raw.items() if isinstance(v, np.ndarray))
    assert small / 4 < 1024  # per clip, everything but the clip and the waveform
    batch = DeviceAugment.from_loader(ld.cfg)(raw)
    assert batch["video"].shape == (4, 4, 3, 6, 48, 48) and batch["video"].dtype == torch.float32
    assert batch["audio"].shape == (4, 4, 1, 40, 101)
    assert batch["boxes"].shape == (4, 4, 6, 4)
    assert batch["text"].dtype == torch.int64 and batch["label"].dtype == torch.int64
    # reversed views are the forward views flipped in time, in both modalities
    assert torch.equal(batch["video"][:, 1], batch["video"][:, 0].flip(2))
    assert torch.equal(batch["audio"][:, 1], batch["audio"][:, 0].flip(-1))
    assert torch.equal(batch["boxes"][:, 1], batch["boxes"][:, 0].flip(1))
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
    audio = DeviceAugment.from_loader(ld.cfg)(next(iter(ld)))["audio"]
    assert audio.shape == (2, 1, 1, 40, 101) and torch.isfinite(audio).all()
    assert (audio == 0).float().mean() < 0.01  # standardised log-mels: zeros only by chance


def test_eval_mode_is_deterministic_and_covers_everything(synth_shards):
    keys = []
    for rank in range(2):
        ld = loader(synth_shards, "resampled=false", "train=false", "workers=2", "batch_size=5", *TINY,
                    rank=rank, world_size=2)
        keys.append([k for b in ld for k in b["key"]])
    assert not set(keys[0]) & set(keys[1])
    assert len(keys[0]) + len(keys[1]) == 24


def probe(shards, workers, n, state_in, out_dir, save_at=()) -> subprocess.Popen:
    """``tests/loader_probe.py`` started in a new process; ``seen`` reads its batches."""
    cmd = [sys.executable, str(HERE / "loader_probe.py"), str(shards), str(workers), str(n), str(state_in),
           str(out_dir)] + ([",".join(map(str, save_at))] if save_at else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def seen(proc: subprocess.Popen) -> list:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return json.loads(out)


STOPS = (1, 2, 3, 5, 6)  # 6 batches per epoch: 6 stops at the boundary, the rest resume across it


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_resume_in_a_new_process_is_exact(synth_shards, tmp_path, workers):
    """9 batches straight (the state saved on the way after each stop) = the first s of
    them + a new process restored from the state after s + the rest, for every stop."""
    straight = seen(probe(synth_shards, workers, 9, "-", tmp_path, STOPS))
    assert len({json.dumps(b[0]) for b in straight}) == 9  # batches differ: order is tested
    restored = {s: probe(synth_shards, workers, 9 - s, tmp_path / f"state{s}.pt", tmp_path) for s in STOPS}
    for s, proc in restored.items():  # (the restores run side by side, each a process of its own)
        assert seen(proc) == straight[s:], f"stop after {s}"


def test_loader_state_is_plain_data(synth_shards, tmp_path):
    ld = loader(synth_shards, "workers=2", "batch_size=2", "epoch_batches=4", *TINY)
    it = iter(ld)
    next(it), next(it), next(it)
    torch.save(ld.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state == ld.state_dict() and state["next_worker"] == 1 and state["done"] == [2, 1]
    with pytest.raises(InputError, match="loader.workers=2"):
        loader(synth_shards, "workers=3", *TINY).load_state_dict(state)


def test_seeds_and_epochs_change_the_stream(synth_shards):
    def keys(seed, epochs=1):
        ld = loader(synth_shards, "batch_size=4", "workers=0", "epoch_batches=3", f"seed={seed}", *TINY)
        return [[k for b in ld for k in b["key"]] for _ in range(epochs)]
    a, b = keys(1, epochs=2), keys(1)
    assert a[0] == b[0] and a[0] != a[1] and keys(2)[0] != a[0]


def test_corrupt_shards_and_samples_are_skipped_and_counted(synth_shards, tmp_path):
    good = expand_shards(str(synth_shards))[0]
    data = Path(good).read_bytes()
    (tmp_path / "a-truncated.tar").write_bytes(data[: len(data) // 2 + 100])
    rewrite_tar(good, tmp_path / "b-badvideo.tar",
                change=lambda name, d: b"\x00garbage" * 50 if name.endswith(".mp4") else d)
    (tmp_path / "c-garbage.tar").write_bytes(b"not a tar at all" * 100)
    ld = loader(tmp_path, "resampled=false", "train=false", "workers=0", "batch_size=2", *TINY,
                "shuffle_buffer=1")
    n_ok = sum(len(b["key"]) for b in ld)
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
    ld = loader(synth_shards, "workers=0", "batch_size=2", "audio.rate=8000", *TINY)
    with pytest.raises(InputError, match="none of the first 1000 samples.*expects 8000 Hz"):
        next(iter(ld))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_all_shards_unreadable_is_one_clear_error(tmp_path, workers):
    """Resampled shards that are all unreadable: one error within seconds, not warnings
    about skipped data for ever (a new process, so a loader that spins fails the test)."""
    for i in range(3):
        (tmp_path / f"s{i}.tar").write_bytes(b"not a tar at all" * 100)
    code = ("import sys; from pipeline.config import load_config; "
            "from pipeline.loader.loader import ClipLoader, LoaderConfig; "
            "cfg = load_config(LoaderConfig, [], sys.argv[1:]); next(iter(ClipLoader(cfg)))")
    res = subprocess.run([sys.executable, "-c", code, f"shards={tmp_path}", f"workers={workers}", "batch_size=2",
                          *TINY], capture_output=True, text=True, timeout=180)
    assert res.returncode != 0 and "InputError" in res.stderr
    assert "the first 1000 reads all failed and no clip was made" in res.stderr
    assert res.stderr.count("skipping unreadable data") <= 10 * max(workers, 1)


def test_settings_under_which_no_batch_can_come_are_errors(synth_shards, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "s.tar").write_bytes(Path(expand_shards(str(synth_shards))[0]).read_bytes())
    for rank in range(2):  # a rank without a shard would leave the other waiting at every step
        with pytest.raises(InputError, match="1 shard.*2 rank.*resampled=true"):
            loader(one, "resampled=false", "workers=1", *TINY, rank=rank, world_size=2)
    with pytest.raises(InputError, match="1 shard.*1 rank.*x 2 worker"):
        loader(one, "resampled=false", "workers=2", *TINY)
    with pytest.raises(ConfigError, match="epoch_batches=0.*must be >= 1"):  # refused as the config is read
        loader(synth_shards, "epoch_batches=0", *TINY)
    with pytest.raises(InputError, match="modalities"):
        loader(synth_shards, "modalities=[video,depth]", *TINY)
    with pytest.raises(InputError, match="decode_device=cuda.*workers=0"):
        loader(synth_shards, "clip.decode_device=cuda", "workers=2", *TINY)
    # an evaluation pass may leave a rank without data: it reads nothing and ends
    assert list(loader(one, "resampled=false", "train=false", "workers=0", *TINY, rank=1, world_size=2)) == []


def test_ranks_get_equal_batches_without_resampling(synth_shards):
    """4 shards of 6 samples over 2 ranks x 2 workers, resampled=false: every rank gets
    epoch_batches per epoch (each worker cycling its own shard), from its own shards."""
    keys = []
    for rank in range(2):
        ld = loader(synth_shards, "resampled=false", "workers=2", "batch_size=4", "epoch_batches=6",
                    "shuffle_buffer=1", *TINY, rank=rank, world_size=2)
        epochs = [[b["key"] for b in ld] for _ in range(2)]
        assert [len(e) for e in epochs] == [6, 6]
        keys.append([{k for b in e for k in b} for e in epochs])
    for epoch in range(2):  # the ranks read different shards (12 distinct clips each)
        assert not keys[0][epoch] & keys[1][epoch] and len(keys[0][epoch]) == 12


def test_audio_only_and_video_only_modalities(synth_shards, tmp_path):
    """An audio-only shard (real sound, .wav + .json, no .mp4) loads with
    modalities=[audio], decoding no video; a video-only load does no audio work."""
    with av.open(str(HERE / "data" / "lego_toy.mp4")) as c:
        resample = av.AudioResampler(format="s16", layout="mono", rate=16000)
        pcm = b"".join(bytes(f.planes[0])[: f.samples * 2] for fr in c.decode(audio=0)
                       for f in resample.resample(fr))
    wav = pcm_wav(pcm, 16000)
    seconds = len(pcm) / 2 / 16000
    with tarfile.open(tmp_path / "audio.tar", "w") as tf:
        for i in range(3):
            key = f"sound{i}"
            meta = json.dumps({"key": key, "duration": seconds, "audio_rate": 16000, "has_audio": True}).encode()
            for ext, data in (("wav", wav), ("json", meta), ("cls", str(i).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    ld = loader(tmp_path / "audio.tar", "modalities=[audio]", "resampled=false", "workers=0",
                "shuffle_buffer=1", "batch_size=3", "epoch_batches=2", "clip.positions=2", "clip.reverse=true", "audio.seconds=1.0")
    raw = next(iter(ld))
    assert "video" not in raw and raw["wave"].shape == (3, 2, 16000) and raw["wave"].abs().max() > 1000
    batch = DeviceAugment.from_loader(ld.cfg)(raw)
    assert "video" not in batch and batch["audio"].shape == (3, 4, 1, 40, 101)
    assert sorted(batch["label"].tolist()) == [0, 1, 2]
    # the clip positions lie in the sound, at least min_shift apart
    assert (np.abs(np.diff(raw["start"], axis=1)) >= 0.5 - 1e-6).all() and (raw["start"] <= seconds - 1).all()
    with pytest.raises(InputError, match="none of the first"):  # the default asks for video too
        next(iter(loader(tmp_path / "audio.tar", "workers=0", "batch_size=2", *TINY)))
    # video only: samples without .wav are fine and nothing of audio is made
    rewrite_tar(expand_shards(str(synth_shards))[0], tmp_path / "silent.tar", keep=lambda n: not n.endswith(".wav"))
    ld = loader(tmp_path / "silent.tar", "modalities=[video]", "workers=0", "batch_size=2", *TINY)
    raw = next(iter(ld))
    assert {"wave", "gain", "spec_masks"}.isdisjoint(raw) and not raw["has_audio"].any()
    batch = DeviceAugment.from_loader(ld.cfg)(raw)
    assert "audio" not in batch and batch["video"].shape == (2, 1, 3, 4, 32, 32)


def test_loader_benchmark_reports_the_issues_numbers(synth_shards, tmp_path):
    """`bench loader` on real shards: the keys the issue names, ratios from the peer."""
    from pipeline.bench import loader as bench
    out = tmp_path / "bench.json"
    cfg = load_config(bench.Config, [], [f"shards={synth_shards}", "workers=0,1,2", "batches=2",
                                         "batch_size=4", "size=32", "frames=4", "raw_clips=8",
                                         "paper_batches=0", f"json={out}"])
    res = bench.run(cfg)
    assert json.loads(out.read_text()) == res
    assert set(res["raw_clips_per_s"]) == {"torchcodec", "decord", "pyav"}
    fastest = max(res["raw_clips_per_s"].values())
    for w, row in res["per_workers"].items():
        assert row["clips_per_s"] > 0 and row["with_device_augment_clips_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["clips_per_s"] / row["peer_clips_per_s"], abs=2e-3)
        assert row["main_process_cpu_per_batch_ms"] >= 0
    assert res["raw_clips_per_s"][res["peer_backend"]] == fastest
    # 4 frames of 32 x 32 x 3 bytes and 16000 int16 samples, plus < 1 KB of the rest
    assert 4 * 32 * 32 * 3 + 32000 < res["bytes_per_clip"] < 4 * 32 * 32 * 3 + 32000 + 1024
    assert "scaling_1_to_2" in res


@pytest.mark.slow  # a fresh interpreter importing the whole stack
@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: `make gpu-check` runs the real check")
def test_gpu_check_without_cuda_is_one_clear_error():
    res = subprocess.run([sys.executable, "-m", "pipeline", "bench", "gpu"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "bench gpu needs a CUDA GPU" in res.stderr and "Traceback" not in res.stderr
