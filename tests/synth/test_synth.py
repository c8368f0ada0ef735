"""The synthetic corpus: real mp4s that both decoders read, sane boxes, class spectra."""
import io
import json

import torch  # noqa: F401  (import torch before decord)
import av
import decord
import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.synth.stage import SynthConfig, run
from pipeline.synth.classes import make_classes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    cfg = load_config(SynthConfig, [], [f"out={out}", "n_videos=12", "n_classes=6",
                                         "seconds=2", "size=64", "workers=2", "seed=3", "difficulty=easy"])
    run(cfg)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return out, rows


def test_manifest_and_files(corpus):
    out, rows = corpus
    assert len(rows) == 12
    classes = json.loads((out / "classes.json").read_text())
    assert len(classes) == 6
    names = {c["name"] for c in classes}
    for row in rows:
        assert (out / row["path"]).stat().st_size > 1000
        assert row["label"] in names and row["caption"]
        assert row["label"] not in row["distractors"]


def test_pyav_and_decord_decode(corpus):
    out, rows = corpus
    path = out / rows[0]["path"]
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    assert len(frames) == 50 and frames[0].shape == (64, 64, 3)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].rate == 16000
    vr = decord.VideoReader(io.BytesIO(path.read_bytes()))
    assert len(vr) == 50
    batch = vr.get_batch([0, 25, 49]).asnumpy()
    assert batch.shape == (3, 64, 64, 3)
    # both decoders agree on the pixels (same H.264 stream, same colour conversion)
    assert np.abs(batch[0].astype(int) - frames[0].astype(int)).mean() < 2.0


def test_boxes_inside_frames(corpus):
    _, rows = corpus
    for row in rows:
        assert len(row["boxes"]) == row["n_frames"]  # the sounding centre never leaves
        for t, x0, y0, x1, y1 in row["boxes"]:
            assert 0 <= t < 2.0
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert (x1 - x0) * 64 >= 4 and (y1 - y0) * 64 >= 4


def test_audio_has_class_pitch(corpus):
    out, rows = corpus
    classes = {c["name"]: c for c in json.loads((out / "classes.json").read_text())}
    for row in rows[:6]:
        with av.open(str(out / row["path"])) as c:
            pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        spec = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
        freqs = np.fft.rfftfreq(len(pcm), 1 / 16000)
        f0 = classes[row["label"]]["f0"]
        band = (freqs > f0 * 0.97) & (freqs < f0 * 1.03)
        # the fundamental stands far above the noise floor
        assert spec[band].max() > 20 * np.median(spec), row


def test_deterministic_and_classes_independent_of_seed(tmp_path):
    def make(out, seed):
        cfg = load_config(SynthConfig, [], [f"out={out}", "n_videos=3", "seconds=1", "size=48", "object_size=[10,20]",
                                             "workers=1", f"seed={seed}"])
        run(cfg)
    make(tmp_path / "a", 5)
    make(tmp_path / "b", 5)
    make(tmp_path / "c", 6)
    for i in range(3):
        name = f"videos/{i:06d}.mp4"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/manifest.jsonl").read_text() == (tmp_path / "b/manifest.jsonl").read_text()
    assert (tmp_path / "a/manifest.jsonl").read_text() != (tmp_path / "c/manifest.jsonl").read_text()
    assert (tmp_path / "a/classes.json").read_text() == (tmp_path / "c/classes.json").read_text()


def test_classes_distinct():
    classes = make_classes(40)
    assert len({c.name for c in classes}) == 40
    assert len({(c.shape, c.texture, c.rgb) for c in classes}) == 40
    with pytest.raises(ValueError):
        make_classes(1)


def test_sounding_object_glows_at_its_rim():
    """The visual cue of the sounding object: its outer band brightens, its inside does not."""
    from pipeline.synth.render import rim_mask, sounding_look, sprite

    cls = make_classes(6)[2]
    rgb, alpha = sprite(cls, 40)
    band = rim_mask(alpha)
    inside = alpha > 0
    assert band.any() and (band <= inside).all() and band.sum() < 0.7 * inside.sum()
    lit = sounding_look(rgb, alpha, band, 1.0, 0.8)
    assert (lit[band].mean(axis=1) > rgb[band].mean(axis=1) + 0.2).mean() > 0.9  # towards white
    core = inside & ~band
    assert np.allclose(lit[core], rgb[core])
    dim = sounding_look(rgb, alpha, band, 0.55, 0.45)
    assert np.allclose(dim[core], 0.55 * rgb[core]) and dim[band].mean() < lit[band].mean()
