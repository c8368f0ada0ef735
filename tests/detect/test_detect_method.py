"""The avloc method: loss decreases on a fixed batch, Sinkhorn self-labels follow the
prescribed marginals, the max-over-locations InfoNCE with negatives from another rank
equals the single-process loss on the concatenated batch (2 real gloo processes), and
the DeepSpeed engine trains it on 2 ranks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dist_utils import free_port, run_distributed
from pipeline.config import load_config
from pipeline.train.config import TrainConfig
from pipeline.train.methods import build_method
from pipeline.train.methods.avloc import AVLocMethod

HERE = Path(__file__).resolve().parents[1]  # tests/: the shared probes
TINY = ["out=unused", "method=avloc", "model.audio.name=resnet_tiny",
        "model.audio.args={widths: [8, 8, 16, 16]}", "model.embed_dim=16",
        "avloc.frame_widths=[8, 16, 16]", "avloc.clusters=3"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared CPU, OpenMP threads spin-waiting for each other
    cost far more than they bring at these tiny sizes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _method(*extra) -> AVLocMethod:
    torch.manual_seed(0)
    return build_method(load_config(TrainConfig, [], TINY + list(extra)), "avloc")


def _batch(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.randn(n, 1, 3, 1, 32, 32, generator=g),
            "audio": torch.randn(n, 1, 1, 40, 51, generator=g)}


def test_loss_decreases_on_a_fixed_batch():
    m = _method()
    batch = _batch(8)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, metrics = m(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert {"loss_nce", "loss_clust", "acc_v2a", "acc_a2v", "head_agree", "clusters_used"} <= set(metrics)
    assert losses[-1] < 0.7 * losses[0]
    out = m.localise(batch)
    assert out["heat"].shape == (8, 4, 4)                       # stride 8 on 32 px
    assert out["heat"].abs().max() <= 1 + 1e-5                  # cosine similarities
    assert out["cluster"].shape == (8,) and int(out["cluster"].max()) < 3


def _biased_logits(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    x[:, 0] += 3.0               # both heads prefer cluster 0 for (almost) every sample
    return x


def test_self_labels_follow_the_marginals():
    n = 60
    for seed in range(3):
        v, a = _biased_logits(n, seed), _biased_logits(n, seed + 100)
        assert torch.bincount(v.argmax(1), minlength=3)[0] >= 55
        uniform = _method("avloc.sinkhorn.n_iters=1000").self_labels(v, a)
        counts = torch.bincount(uniform, minlength=3)
        assert (counts - n / 3).abs().max() <= 2, counts          # equipartition (up to argmax rounding)
        zipf = _method("avloc.sinkhorn.n_iters=1000", "avloc.sinkhorn.marginals=zipf").self_labels(v, a)
        target = torch.tensor([1, 1 / 2, 1 / 3]) / (11 / 6) * n   # sizes ~ rank^-1
        counts = torch.bincount(zipf, minlength=3).sort(descending=True).values
        assert (counts - target).abs().max() <= 2, counts
        assert torch.bincount(zipf, minlength=3).argmax() == 0    # the largest target goes to the largest cluster


def _two_rank_loss(rank, world_size, batch, state):
    m = _method()
    m.load_state_dict(state)
    m.eval()  # BatchNorm with running stats: the two processes compute what one would
    half = {k: v[rank * 4:(rank + 1) * 4] for k, v in batch.items()}
    vmap, aud = m.embed(half)
    loss, _ = m.nce(vmap, aud)
    return float(loss)


@pytest.mark.distributed
def test_nce_with_negatives_from_another_rank_equals_one_process():
    m = _method()
    m.eval()
    batch = _batch(8, seed=3)
    with torch.no_grad():
        single, _ = m.nce(*m.embed(batch))
    losses = run_distributed(_two_rank_loss, 2, batch, m.state_dict())
    # each rank returns its local mean over the global batch's negatives; their mean is the loss
    assert abs(sum(losses) / 2 - float(single)) < 1e-5
    assert abs(losses[0] - losses[1]) > 1e-6  # the ranks really scored different rows


@pytest.mark.distributed
def test_engine_trains_avloc_on_two_ranks(synth_shards, tmp_path):
    """DeepSpeed on 2 gloo ranks: the gathered NCE and the collective Sinkhorn run inside
    the engine's step, and both ranks end with identical parameters."""
    args = [str(HERE / "train_probe.py"), str(tmp_path / "result"), "0", f"out={tmp_path}",
            f"loader.shards={synth_shards}", "steps=3", "log_every=1", "tensorboard=false",
            "loader.batch_size=4", "loader.workers=1", "loader.epoch_batches=3", "loader.shuffle_buffer=4",
            "loader.clip.frames=1", "loader.video.size=32", "loader.audio.seconds=0.5",
            "optim.warmup_steps=2", *TINY[1:]]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={free_port()}", *args], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    results = [json.loads((tmp_path / f"result.rank{r}").read_text()) for r in range(2)]
    assert [r["status"] for r in results] == ["done", "done"]
    assert results[0]["param_digest"] == results[1]["param_digest"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["clusters_used"] >= 1 for r in rows)


def test_video_backbone_variant_gives_time_pooled_heatmaps():
    m = _method("avloc.visual=video", "model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}")
    batch = _batch(4)
    batch["video"] = torch.randn(4, 1, 3, 4, 32, 32)
    loss, _ = m(batch)
    loss.backward()
    assert m.localise(batch)["heat"].shape == (4, 2, 2)   # stride 16 on 32 px, time averaged
