"""``bench scale`` on a tiny corpus: every stage it runs is measured in its own process at
both sizes, compared, and judged against the goals in the JSON."""
import json
import subprocess
import sys

from pipeline.cli import main


def test_bench_scale_json_on_a_tiny_corpus(tmp_path):
    out = tmp_path / "scale.json"
    res = subprocess.run([sys.executable, "-m", "pipeline", "bench", "scale", "--n", "4", "--factor", "2",
                          "--classes", "2", "--workers", "1", "--videos_per_shard", "2",
                          "--stages", "[synth, shard]", "--scratch", str(tmp_path / "work"), "--json", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["sizes"] == [4, 8] and set(r["stages"]) == {"synth", "shard"}
    for stage, row in r["stages"].items():
        for size, videos in (("n4", 4 + 1), ("n8", 8 + 2)):  # + the held-out quarter
            m = row[size]
            assert m["items"] == videos and m["wall_s"] > 0 and m["cpu_s"] > 0
            assert m["s_per_item"] == round(m["wall_s"] / videos, 6)
            assert m["peak_rss_mb"] > 10 and m["peak_rss_mb_by_program"]
        assert row["rss_ratio"] == round(row["n8"]["peak_rss_mb"] / row["n4"]["peak_rss_mb"], 3)
        assert row["time_per_item_ratio"] > 0
    assert "ffmpeg" in r["stages"]["shard"]["n4"]["peak_rss_mb_by_program"]
    shard = r["stages"]["shard"]
    assert shard["goal"].startswith("time_per_item_ratio <= 1.25") and isinstance(shard["met"], bool)
    assert "met" not in r["stages"]["synth"]  # no goal for the corpus generator
    assert r["met"] + r["not_met"] == ["shard"]
    assert (tmp_path / "work" / "n8" / "shards" / "test" / "index.json").exists()


def test_unknown_stage_is_one_error(capsys):
    assert main(["bench", "scale", "--stages", "[shard, trian]"]) == 2
    err = capsys.readouterr().err
    assert "'stages'" in err and "'trian'" in err
