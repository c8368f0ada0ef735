"""``python -m jobs`` as a user runs it: submit a stage, wait, read the status; dry runs and
config errors need no cluster but run here with the other launcher tests."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slurm
SMALL_NODE = ["slurm.cpus_per_task=1", "slurm.mem=null", "slurm.time_min=10"]


def jobs_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.parametrize("cluster", ["slurm", "local"])
def test_run_stage_waits_and_reports_status(slurm_cluster, tmp_path, cluster):
    out, job_dir = tmp_path / "corpus", tmp_path / "jobs"
    proc = jobs_cli("run", "synth", f"out={out}", "n_videos=2", "n_classes=2", "seconds=1",
                    "size=64", "workers=1", f"cluster={cluster}", f"job_dir={job_dir}", "--wait",
                    *SMALL_NODE, env=slurm_cluster.env)
    assert proc.returncode == 0, proc.stderr
    assert f"submitted 1 job(s) of 'synth' on {cluster}" in proc.stdout
    assert "done: {'videos': 2" in proc.stdout
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2
    [launch] = json.loads((job_dir / "jobs.json").read_text())["launches"]
    job_id = launch["jobs"][0]["job_id"]
    assert (job_dir / "config.yaml").read_text().startswith(f"out: {out}")
    status = jobs_cli("status", str(job_dir), "--lines", "3", env=slurm_cluster.env)
    assert status.returncode == 0, status.stderr
    assert f"{job_id}: DONE" in status.stdout
    assert f"-- stderr ({job_dir / job_id / f'{job_id}_0_log.err'}) --" in status.stdout


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(tmp_path):
    job_dir = tmp_path / "jobs"
    proc = jobs_cli("run", "synth", f"out={tmp_path}", "--dry-run", "--cluster", "slurm",
                    "slurm=train", "slurm.partition=gpu", "slurm.extra.reservation=big",
                    f"--job-dir={job_dir}")
    assert proc.returncode == 0, proc.stderr
    for line in ("#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --reservation=big", "#SBATCH --signal=USR2@300",
                 "#SBATCH --time=1440", f"-m submitit.core._submit {job_dir}/%j", f"out: {tmp_path}"):
        assert line in proc.stdout
    assert not job_dir.exists()


@pytest.mark.parametrize("args, message", [
    (["slurm.nodez=2"], "command line 'slurm.nodez=2': unknown key 'nodez' (did you mean 'nodes'?)"),
    (["cluster=slrum"], "command line 'cluster=slrum': bad value for key 'cluster': 'slrum'; "
                        "must be one of '', 'slurm', 'local', 'debug'"),
    (["slurm=nosuch"], "slurm=nosuch: no profile"),
    (["n_vidoes=3"], "unknown key 'n_vidoes' (did you mean 'n_videos'?)"),
])
def test_config_mistakes_are_one_clear_error(tmp_path, args, message):
    proc = jobs_cli("run", "synth", f"out={tmp_path}", "--dry-run", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_misspelt_key_in_a_profile_names_the_file(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("nodes: 1\ngpus_per_nod: 1\n")
    proc = jobs_cli("run", "synth", f"out={tmp_path}", "--dry-run", f"slurm={profile}")
    assert proc.returncode == 2
    assert f"{profile}: unknown key 'gpus_per_nod' (did you mean 'gpus_per_node'?)" in proc.stderr
