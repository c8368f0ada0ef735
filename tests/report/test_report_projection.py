"""The report's t-SNE runs on a fixed-size stratified sample of the held-out clips and
says so on the page, whatever the size of the test set."""
import numpy as np

from pipeline.io.atomic import save_npz, write_json
from pipeline.report.figures import stratified_rows
from pipeline.report.stage import ReportConfig, build_report


def test_stratified_rows_cap_the_sample_with_an_equal_share_per_class():
    labels = np.repeat([0, 1, 2], [900, 90, 10])
    rows = stratified_rows(labels, 60)
    assert len(rows) <= 60 and (np.diff(rows) > 0).all()
    counts = np.bincount(labels[rows], minlength=3)
    assert counts.tolist() == [20, 20, 10]  # the small class keeps all of its clips
    assert stratified_rows(labels[:50], 60).tolist() == list(range(50))


def test_report_projects_a_sample_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    n, labels = 1200, np.repeat(np.arange(4), 300)
    (tmp_path / "eval").mkdir()
    write_json(tmp_path / "eval" / "eval.json", {"n_train": 10, "n_test": n, "knn_top1": 0.5})
    save_npz(tmp_path / "eval" / "embeddings.npz",
             {"label": labels, "video_emb": rng.normal(size=(n, 8)).astype(np.float32) + labels[:, None],
              "audio_emb": rng.normal(size=(n, 8)).astype(np.float32)})
    page = build_report(ReportConfig(run_dir=str(tmp_path), projection_points=80)).read_text()
    assert "t-SNE of 80 of the 1200 held-out clips: a stratified sample" in page
    assert "data:image/png;base64" in page
