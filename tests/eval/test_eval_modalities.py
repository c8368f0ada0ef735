"""Per-modality results beside random init, the 'no better than random init' flag, and
the README table rendered from a `bench learning` result."""
import json

import pytest

from pipeline.bench.learning import Config, markdown, parse_seeds, run, summarise
from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.eval.modalities import FLAG, flagged, per_modality, text_table

EV = {"knn_top1": 0.93, "linear_top1": 0.9, "knn_top1_k20_audio": 1.0, "linear_top1_audio": 1.0,
      "knn_top1_av": 0.99, "r_at_1_a2v": 18.8, "r_at_1_v2a": 1.5, "selavi_nmi": 0.84, "map50": 0.56,
      "random_init": {"knn_top1": 0.177, "linear_top1": 0.3, "knn_top1_k20_audio": 0.99,
                      "linear_top1_audio": 1.0, "knn_top1_av": 0.896, "r_at_1_a2v": 1.0, "r_at_1_v2a": 1.0}}


def test_per_modality_and_flags():
    table = per_modality(EV)
    assert set(table) == {"video", "audio", "joint"}
    assert table["video"]["knn_top1"] == {"label": "kNN top-1 (k=20)", "trained": 0.93, "random_init": 0.177,
                                          "clearly_above": True}
    # the easy corpus's audio: 1.000 against 0.990 at random init says nothing about learning
    assert flagged(table) == ["audio/knn_top1_k20_audio", "audio/linear_top1_audio", "joint/r_at_1_v2a"]
    assert table["joint"]["r_at_1_a2v"]["clearly_above"]  # percent: 18.8 against 1.0
    text = text_table(table)
    assert text.count(FLAG) == 3 and "0.177" in text


def test_small_metrics_count_as_clear_when_doubled():
    from pipeline.eval.modalities import clearly_above
    assert clearly_above("r_at_1_a2v", 4.2, 1.0)       # 4x chance among 96 clips
    assert not clearly_above("r_at_1_a2v", 2.0, 1.0)   # 1 point: noise
    assert not clearly_above("knn_top1", 0.30, 0.27) and clearly_above("knn_top1", 0.33, 0.27)


def test_metric_without_random_init_is_not_flagged():
    table = per_modality({"knn_top1": 0.5})
    assert "random_init" not in table["video"]["knn_top1"] and flagged(table) == []


def test_summary_and_markdown_over_seeds():
    ev2 = json.loads(json.dumps(EV))
    ev2["knn_top1"], ev2["map50"] = 0.73, 0.66
    result = {"seeds": [0, 1], "n_test_videos": 96, "date": "2026-12-07 12:00 UTC", "commit": "abc",
              "machine": {"processor": "x86_64", "cpus": 2, "torch": "2.5"}, "demo": [],
              "recipes": {"gdt_config": {"path": "configs/gdt_tiny.yaml", "sha1": "0123456789ab"}},
              "metrics": summarise({0: EV, 1: ev2})}
    m = result["metrics"]
    assert m["knn_top1"]["per_seed"] == [0.93, 0.73] and m["knn_top1"]["mean"] == pytest.approx(0.83)
    assert m["knn_top1"]["std"] == pytest.approx(0.1) and m["knn_top1"]["random_init"] == [0.177, 0.177]
    assert m["knn_top1_k20_audio"]["flagged"] and not m["knn_top1"]["flagged"]
    assert m["map50"]["per_seed"] == [0.56, 0.66] and "random_init" not in m["map50"]
    md = markdown(result)
    assert "| video: kNN top-1 (k=20) | 0.830 ± 0.100 | 0.930 / 0.730 | 0.177 |  |" in md
    assert f"| audio: kNN top-1 (k=20) | 1.000 ± 0.000 | 1.000 / 1.000 | 0.990 | {FLAG} |" in md
    assert "held-out, 96 videos" in md and "gdt_tiny.yaml 0123456789ab" in md and "2026-12-07" in md


def test_from_json_renders_without_running(tmp_path):
    result = {"seeds": [0], "date": "d", "machine": {"processor": "p", "cpus": 1, "torch": "t"},
              "recipes": {}, "metrics": summarise({0: EV})}
    src = tmp_path / "learning.json"
    src.write_text(json.dumps(result))
    run(Config(from_json=str(src), markdown=str(tmp_path / "table.md")))
    assert (tmp_path / "table.md").read_text() == markdown(result)
    src.write_text("{}")
    with pytest.raises(InputError, match="learning.json"):
        run(Config(from_json=str(src)))


def test_seeds_parse():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("3") == [3]
    for bad in ("", "a", "0,0", "-1"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)
