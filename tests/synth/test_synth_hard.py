"""The hard synthetic corpus (the default): a class's sound is its rhythm only, so an
untrained audio network cannot separate the classes, while the easy corpus it replaces
is separable at random init."""
import json

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, load_config
from pipeline.eval.knn import knn_accuracy
from pipeline.loader.audio_transforms import AudioConfig, LogMel
from pipeline.models.registry import build_audio
from pipeline.synth.classes import make_classes
from pipeline.synth.hard import PATTERNS, class_sound, pattern_envelope, render_hard_audio
from pipeline.synth.render import render_audio
from pipeline.synth.stage import SynthConfig, run

RATE = 16000


def test_hard_is_the_default_and_its_manifest(tmp_path):
    cfg = load_config(SynthConfig, [], [f"out={tmp_path}", "n_videos=6", "n_classes=4", "seconds=1", "size=48",
                                         "object_size=[10,20]", "workers=1", "seed=2"])
    assert cfg.difficulty == "hard"
    run(cfg)
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert all(c["f0"] == 0.0 and c["rhythm"] in PATTERNS for c in classes)
    assert len({c["rhythm"] for c in classes}) == 4
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        assert 1 <= len(row["heard"]) <= 2 and row["label"] not in row["heard"]
        assert "varying" in row["caption"] or "low" not in row["caption"]


def test_easy_keeps_fixed_pitches(tmp_path):
    cfg = load_config(SynthConfig, [], [f"out={tmp_path}", "n_videos=2", "n_classes=4", "seconds=1", "size=48",
                                         "object_size=[10,20]", "workers=1", "difficulty=easy"])
    run(cfg)
    assert all(c["f0"] > 0 for c in json.loads((tmp_path / "classes.json").read_text()))
    assert "heard" not in (tmp_path / "manifest.jsonl").read_text()


def test_bad_difficulty_and_ranges_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="difficulty"):
        load_config(SynthConfig, [], [f"out={tmp_path}", "difficulty=medium"])
    with pytest.raises(ConfigError, match="distractor_db"):
        load_config(SynthConfig, [], [f"out={tmp_path}", "distractor_db=[-5,-10]"])


def test_classes_beyond_the_rhythms_differ_in_family():
    sounds = [class_sound(i) for i in range(2 * len(PATTERNS))]
    assert len(set(sounds)) == len(sounds)
    assert make_classes(20, "hard")[12].timbre != make_classes(20, "hard")[2].timbre


def test_envelope_has_the_pattern_onsets_in_every_bar():
    t = np.arange(4 * RATE) / RATE
    for name, steps in PATTERNS.items():
        env = pattern_envelope(name, t, phase=0.3, decay_s=0.03)
        rising = np.flatnonzero((env[1:] > 0.5) & (env[:-1] <= 0.5))
        # one onset per pattern step and bar; a dense roll may merge the first with the ring-over
        assert abs(len(rising) - 4 * len(steps)) <= 1, name


def _clips(hard: bool, seed: int, n: int, k: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    classes = make_classes(k, "easy")
    x, y = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        lab = int(rng.integers(k))
        if hard:
            others = [int(c) for c in rng.choice([c for c in range(k) if c != lab], 2, replace=False)]
            wave, _ = render_hard_audio(lab, others, 2 * RATE, RATE, rng.random(), rng.uniform(0, 15),
                                        (-20, -10), rng)
        else:
            wave = render_audio(classes[lab], 2 * RATE, RATE, rng.random(), rng.uniform(0, 15), rng)
        start = int(rng.integers(0, RATE))
        x.append(wave[start:start + RATE])
        y.append(lab)
    return torch.tensor(np.stack(x)), np.array(y)


@pytest.mark.parametrize("hard", [False, True])
def test_random_init_audio_knn(hard):
    """The point of the hard corpus: random-init audio kNN (8 classes, chance 0.125) is
    at most twice chance on it, and far above that on the easy one."""
    torch.manual_seed(0)
    logmel = LogMel(AudioConfig())
    net = build_audio("resnet_tiny", widths=[8, 16, 32, 64]).eval()
    xtr, ytr = _clips(hard, 0, 160)
    xte, yte = _clips(hard, 1, 64)
    with torch.no_grad():
        ftr, fte = net(logmel(xtr).reshape(len(xtr), 1, 40, -1)), net(logmel(xte).reshape(len(xte), 1, 40, -1))
    acc = knn_accuracy(ftr.numpy(), ytr, fte.numpy(), yte, 20)
    if hard:
        assert acc <= 0.25, acc
    else:
        assert acc >= 0.6, acc
