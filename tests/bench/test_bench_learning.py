"""`bench learning` end to end on a tiny setting: two seeds of the demo's learned steps
(a few GDT steps, tiny networks), the JSON per seed with mean, std and random init, and
the markdown table rendered from it."""
import json

from pipeline.cli import main

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "loader.batch_size=8", "loader.workers=1", "loader.clip.frames=4",
        "loader.video.size=32", "tensorboard=false", "steps=2"]


def test_bench_learning_two_seeds(tmp_path):
    demo = ["n_train=12", "n_test=8", "n_classes=2", "skip=[cluster,detect,finetune]",
            "gdt_overrides=" + json.dumps(TINY)]
    rc = main(["bench", "learning", "--seeds", "0,1", "--out", str(tmp_path / "runs"),
               "--json", str(tmp_path / "learning.json"), "--markdown", str(tmp_path / "table.md"),
               "demo=" + json.dumps(demo), "--quiet"])
    assert rc == 0
    result = json.loads((tmp_path / "learning.json").read_text())
    assert result["seeds"] == [0, 1] and result["machine"]["cpus"] >= 1 and result["date"]
    assert set(result["recipes"]) == {"gdt_config", "selavi_config", "detect_config", "finetune_config"}
    assert all(len(r["sha1"]) == 12 for r in result["recipes"].values())
    knn = result["metrics"]["knn_top1"]
    assert len(knn["per_seed"]) == 2 and len(knn["random_init"]) == 2 and 0 <= knn["mean"] <= 1
    assert {"knn_top1_k20_audio", "knn_top1_av", "r_at_1_a2v"} <= set(result["metrics"])
    # the corpus is made once: the second seed's corpus is the first one's
    seed1 = tmp_path / "runs" / "seed1"
    assert (seed1 / "corpus").is_symlink() and (seed1 / "corpus").resolve() == (tmp_path / "runs" / "seed0" / "corpus").resolve()
    # each seed wrote its per-modality table
    a = json.loads((tmp_path / "runs" / "seed0" / "eval.json").read_text())
    b = json.loads((seed1 / "eval.json").read_text())
    assert a["per_modality"] and b["per_modality"]
    table = (tmp_path / "table.md").read_text()
    assert "| video: kNN top-1 (k=20) |" in table and "seeds 0, 1" in table
    assert main(["bench", "learning", "--from_json", str(tmp_path / "learning.json"),
                 "--markdown", str(tmp_path / "again.md"), "--quiet"]) == 0
    assert (tmp_path / "again.md").read_text() == table
