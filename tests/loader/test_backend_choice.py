"""loader.clip.backend=auto on real shards and real worker processes: one concrete choice,
made in the training process, recorded (loader state, saved config) and used by every
worker; a resume keeps the choice it continues."""
import pytest
import torch
import yaml

from pipeline.config import load_config, save_config
from pipeline.loader import backend_choice
from pipeline.loader.backend_choice import pick, recorded_backend, resolve_for_run
from pipeline.loader.decode import BACKENDS
from pipeline.loader.loader import ClipLoader, LoaderConfig
from pipeline.loader.stream import ClipStream
from pipeline.train.config import TrainConfig

TINY = ["clip.frames=4", "video.size=32", "batch_size=2", "epoch_batches=2"]


def loader(shards, *overrides):
    return ClipLoader(load_config(LoaderConfig, [], [f"shards={shards}", *TINY, *overrides]))


class WhoDecodes(torch.utils.data.IterableDataset):
    """What each real worker process holds: the backend of the stream's decoder and the
    class of the decoder object it will call."""

    def __init__(self, stream: ClipStream):
        self.stream = stream

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        dec = self.stream.decoder
        yield info.id, dec.backend, type(dec.decode_frames.decode).__name__


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_auto_is_resolved_once_recorded_and_the_same_in_every_worker(synth_shards, context):
    ld = loader(synth_shards, "workers=3", f"mp_context={context}")
    assert LoaderConfig().clip.backend == "auto"  # the default
    chosen = ld.cfg.clip.backend
    assert chosen in BACKENDS and ld.decoder.backend == chosen
    assert ld.state_dict()["backend"] == chosen
    dl = torch.utils.data.DataLoader(WhoDecodes(ClipStream(ld._plan(), ld.decoder)), batch_size=None,
                                     num_workers=3, multiprocessing_context=context)
    seen = sorted(dl)
    assert [w for w, _, _ in seen] == [0, 1, 2]
    assert {b for _, b, _ in seen} == {chosen}
    assert len({cls for _, _, cls in seen}) == 1
    # and the loader itself delivers batches with it
    assert next(iter(ld))["video"].dtype == torch.uint8


def test_an_explicit_backend_is_kept_and_auto_without_video_times_nothing(synth_shards):
    for b in BACKENDS:
        assert loader(synth_shards, "workers=0", f"clip.backend={b}").cfg.clip.backend == b
    backend_choice._cache.clear()
    ld = loader(synth_shards, "workers=0", "modalities=[audio]")
    assert ld.cfg.clip.backend == backend_choice.PREFERENCE[0] and not backend_choice._cache


def test_resume_decodes_with_the_checkpoints_choice(synth_shards):
    state = loader(synth_shards, "workers=1").state_dict()
    other = next(b for b in BACKENDS if b != state["backend"])
    ld = loader(synth_shards, "workers=1")
    ld.load_state_dict({**state, "backend": other})
    assert ld.cfg.clip.backend == other and ld.decoder.backend == other
    # an explicit setting is the user's: the checkpoint does not override it
    fixed = loader(synth_shards, "workers=1", f"clip.backend={state['backend']}")
    fixed.load_state_dict({**state, "backend": other})
    assert fixed.cfg.clip.backend == state["backend"]


def test_the_run_records_its_choice_and_a_resume_keeps_it(synth_shards, tmp_path):
    cfg = load_config(TrainConfig, [], [f"out={tmp_path}", f"loader.shards={synth_shards}"])
    assert cfg.loader.clip.backend == "auto"
    saved = tmp_path / "config.yaml"
    fresh = resolve_for_run(cfg.loader, saved, is_main=True)
    assert fresh.clip.backend in BACKENDS and cfg.loader.clip.backend == "auto"
    cfg.loader = fresh
    save_config(cfg, saved)
    assert yaml.safe_load(saved.read_text())["loader"]["clip"]["backend"] == fresh.clip.backend
    # a resume (the same out folder) keeps the recorded choice, whatever timing would say now
    other = next(b for b in BACKENDS if b != fresh.clip.backend)
    saved.write_text(saved.read_text().replace(f"backend: {fresh.clip.backend}", f"backend: {other}"))
    assert recorded_backend(saved) == other
    again = load_config(TrainConfig, [], [f"out={tmp_path}", f"loader.shards={synth_shards}"]).loader
    assert resolve_for_run(again, saved, is_main=True).clip.backend == other


def test_ties_go_to_the_preferred_backend_so_the_choice_is_stable():
    assert pick({"pyav": 10.0, "torchcodec": 9.7, "decord": 12.0}) == "pyav"   # 3 %: a tie
    assert pick({"pyav": 10.0, "torchcodec": 9.0, "decord": 12.0}) == "torchcodec"
    assert pick({"torchcodec": 9.0, "decord": 8.0}) == "decord"


def test_timing_skips_corrupt_clips_and_reports_every_backend(synth_sample):
    good = (synth_sample["mp4"], [0, 1, 2, 3])
    bad = (b"\x00garbage" * 50, [0, 1])
    clips = backend_choice.usable([bad, good, bad], "pyav")
    assert clips == [good]
    ms = backend_choice.time_backends(clips, list(BACKENDS), rounds=3, budget_s=0.5)
    assert set(ms) == set(BACKENDS) and all(v > 0 for v in ms.values())
