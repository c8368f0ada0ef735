"""The DeepSpeed engine for real: 2 gloo processes under torchrun, ZeRO-1 and ZeRO-2,
identical parameters on every rank, and exact resume in new processes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pipeline.train.distributed import free_port

HERE = Path(__file__).resolve().parents[1]  # tests/: the shared probes
TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "loader.batch_size=4", "loader.workers=1", "loader.epoch_batches=3",
        "loader.shuffle_buffer=4", "loader.clip.frames=4", "loader.video.size=32",
        "loader.audio.seconds=0.5", "log_every=1", "optim.warmup_steps=2", "tensorboard=false",
        "gdt.reversal=variant", "gdt.shift=off", "loader.clip.positions=1", "loader.clip.reverse=true"]


def run_probe(out: Path, shards: Path, nproc: int, stop_after: int, *extra: str) -> list[dict]:
    args = [str(HERE / "train_probe.py"), str(out / "result"), str(stop_after),
            f"out={out}", f"loader.shards={shards}", *TINY, *extra]
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={free_port()}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return [json.loads((out / f"result.rank{r}").read_text()) for r in range(nproc)]


@pytest.mark.distributed
@pytest.mark.parametrize("zero", [1, 2])
def test_two_ranks_stay_identical(synth_shards, tmp_path, zero):
    results = run_probe(tmp_path / "run", synth_shards, 2, 0, "steps=4", f"ds.zero_stage={zero}")
    assert [r["status"] for r in results] == ["done", "done"]
    assert results[0]["param_digest"] == results[1]["param_digest"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["clips_per_s"] > 0 for r in rows)
    assert (tmp_path / "run" / "final" / "method.safetensors").exists()
    assert (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.distributed
def test_exact_resume_across_processes(synth_shards, tmp_path):
    """k steps, stop (as a pre-emption), resume in new processes to 2k == 2k straight."""
    straight = run_probe(tmp_path / "straight", synth_shards, 2, 0, "steps=6", "ckpt.every=100")
    stopped = run_probe(tmp_path / "resumed", synth_shards, 2, 3, "steps=6", "ckpt.every=100")
    assert [r["status"] for r in stopped] == ["interrupted"] * 2
    assert all(r["step"] == 3 for r in stopped)
    # loader.clip.backend=auto (the default): the run's config.yaml records one concrete
    # choice (made on rank 0, sent to rank 1); a resume keeps the recorded one, so plant
    # another there: the resume must keep it, and the result is the same (equal frames)
    import yaml
    from pipeline.loader.decode import BACKENDS
    saved = tmp_path / "resumed" / "config.yaml"
    chosen = yaml.safe_load(saved.read_text())["loader"]["clip"]["backend"]
    assert chosen in BACKENDS
    other = next(b for b in BACKENDS if b != chosen)
    saved.write_text(saved.read_text().replace(f"backend: {chosen}", f"backend: {other}"))
    resumed = run_probe(tmp_path / "resumed", synth_shards, 2, 0, "steps=6", "ckpt.every=100")
    assert yaml.safe_load(saved.read_text())["loader"]["clip"]["backend"] == other
    assert resumed[0]["resumed_from"].endswith("step_00000003")
    assert resumed[0]["param_digest"] == straight[0]["param_digest"]
    a = load_file(tmp_path / "straight" / "final" / "method.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "method.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # the resumed run's metrics continue the interrupted one's
    steps = [json.loads(l)["step"] for l in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_wrong_views_for_the_objective_is_a_config_error(synth_shards, tmp_path):
    res = subprocess.run([sys.executable, "-m", "pipeline", "train", f"out={tmp_path}",
                          f"loader.shards={synth_shards}", "gdt.shift=variant",
                          "loader.clip.positions=1"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "loader.clip.positions=2" in res.stderr
