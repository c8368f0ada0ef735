"""metrics.jsonl: the one writer and reader (pipeline.train.metrics_log), one behaviour for
a missing log, a resumed run's log holding each step once, no other module spelling it."""
import pytest

from pipeline.errors import InputError
from pipeline.train.metrics_log import METRICS, MetricsLog, has_metrics, metrics_path, read_metrics


def test_log_reads_back_and_a_resume_drops_the_dead_attempts_rows(tmp_path):
    log = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.jsonl.write({"step": step, "loss": 1.0 / step})
    with open(metrics_path(tmp_path), "a") as fh:
        fh.write('{"step": 5, "lo')  # torn by a kill
    assert has_metrics(tmp_path) and [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    MetricsLog(tmp_path, enabled=True, tensorboard=False, step=2)  # resumed from step 2
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_missing_log_is_one_error_naming_the_path(tmp_path):
    assert not has_metrics(tmp_path)
    with pytest.raises(InputError, match=f"{tmp_path / METRICS}: no metrics.jsonl"):
        read_metrics(tmp_path)
