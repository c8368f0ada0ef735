"""The cluster itself: a trivial job comes back, and so does a failure or a kill."""
import operator
import subprocess
import time

import pytest
from submitit.core.utils import FailedJobError, UncompletedJobError

from jobs.executor import make_executor
from jobs.launch import submit
from jobs.status import render
from jobs.tasks import StageTask
from slurm_standin import StandinConfig

pytestmark = pytest.mark.slurm


def test_trivial_job_returns_its_result(slurm_cluster, tmp_path, node_profile):
    ex = make_executor("slurm", tmp_path, node_profile("default"), "trivial")
    job = ex.submit(operator.mul, 6, 7)
    assert job.result() == 42
    assert "srun" in job.paths.submission_file.read_text()


def test_failing_job_brings_its_error_back(slurm_cluster, launch_cfg, node_profile):
    cfg = StandinConfig(out="/data/clips.tar")
    [job] = submit("fail", StageTask("slurm_standin:fail"), [cfg], [""], launch_cfg,
                   node_profile("default"), cfg)
    with pytest.raises(FailedJobError, match="corrupt input"):
        job.result()
    report = render(launch_cfg.job_dir)
    assert f"{job.job_id}: FAILED  ValueError: /data/clips.tar: corrupt input" in report


def test_killed_job_is_reported_not_awaited_forever(slurm_cluster, tmp_path, node_profile):
    """No result file: submitit must learn from sacct that the job ended."""
    job = make_executor("slurm", tmp_path, node_profile("default"), "sleeper").submit(time.sleep, 600)
    while "RUNNING" not in slurm_cluster.client("squeue", "-h", "-j", job.job_id, "-o", "%T"):
        assert not job.done(), job.stderr()
        time.sleep(0.5)
    subprocess.run(["scancel", job.job_id], check=True, env=slurm_cluster.env)
    with pytest.raises(UncompletedJobError, match="has not produced any output"):
        job.result()
    assert job.state.startswith("CANCELLED")
