"""The three video backends give the same exact frames on real media; WAV windows."""
import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from pipeline.io.wav import encode_wav, read_pcm_window, read_window
from pipeline.loader.decode import BACKENDS, get_decoder

DATA = Path(__file__).resolve().parents[1] / "data"
# sources the backends read as they are; the MPEG program streams (.mpg) are exact in none
# of them (no per-frame timestamps to seek by): the shard stage re-encodes every source,
# and the loader decodes only shard videos (``real_shard_videos``, tests/conftest.py)
DIRECT = ["lego_toy.mp4", "bunny_6ch.mp4", "face_hevc.mov", "rocket_launch.webm",
          "earth_silent_audio.mp4", "park_short.mp4"]


def every_frame(data: bytes) -> list[np.ndarray]:
    """Reference: PyAV decoding the whole stream in order, one RGB conversion per frame."""
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def check_backends_agree(data: bytes, label: str, past_end: bool, any_container: bool = False) -> None:
    """Every backend gives the reference frames, byte for byte, for scattered indices
    (also out of order, repeated, and past the end: the last frame)."""
    ref = every_frame(data)
    n = len(ref)
    idx = [0, min(7, n - 1), min(8, n - 1), n // 2, n - 1, min(3, n - 1)] + ([n + 4] if past_end else [])
    expect = np.stack([ref[min(i, n - 1)] for i in idx])
    for backend in BACKENDS:
        decode = get_decoder(backend)
        got = (decode.decode if any_container else decode)(data, idx)  # .decode: without the MP4-only gate
        assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
        assert got.shape == expect.shape, (backend, label)
        assert np.array_equal(got.numpy(), expect), (backend, label)
    # neighbouring frames differ, so an off-by-one would be caught
    assert any(np.abs(ref[i].astype(int) - ref[i + 1].astype(int)).mean() > 0.5 for i in range(n - 1))


@pytest.mark.parametrize("name", DIRECT)
def test_backends_give_identical_exact_frames_on_real_media(name):
    """h264, hevc and vp8 sources in mp4, mov and webm, read as they are (past the end
    not asked: some sources announce more frames than they hold, park_short.mp4 18 for 17)."""
    check_backends_agree((DATA / name).read_bytes(), name, past_end=False, any_container=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_playlist_in_a_shard_is_refused_before_decoding(backend, tmp_path):
    """An HLS playlist (or any non-MP4 bytes) stored as a sample's .mp4 is refused by every
    backend before FFmpeg parses it: decoding it would open the file it points at."""
    (tmp_path / "private.mp4").write_bytes((DATA / "lego_toy.mp4").read_bytes())
    playlist = ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
                f"file://{tmp_path / 'private.mp4'}\n#EXT-X-ENDLIST\n").encode()
    with pytest.raises(ValueError, match="not an MP4"):
        get_decoder(backend)(playlist, [0, 1])
    with pytest.raises(ValueError, match="not an MP4"):
        get_decoder(backend)((DATA / "rocket_launch.webm").read_bytes(), [0])


def test_backends_give_identical_exact_frames_on_real_shard_videos(real_shard_videos):
    assert len(real_shard_videos) >= 6
    for i, data in enumerate(real_shard_videos):
        check_backends_agree(data, f"shard video {i}", past_end=True)


def test_backends_agree_on_shard_videos(synth_sample):
    data = synth_sample["mp4"]
    idx = [0, 7, 8, 30, 13, 74]
    frames = [get_decoder(b)(data, idx) for b in BACKENDS]
    assert all(torch.equal(frames[0], f) for f in frames[1:])


def test_pyav_backend_keeps_exact_frames_across_videos_of_other_sizes(synth_sample):
    """The PyAV decoder keeps one RGB converter; a real video of another size and codec
    in between must not leave it converting with the wrong geometry."""
    decode = get_decoder("pyav")
    for data in (synth_sample["mp4"], (DATA / "lego_toy.mp4").read_bytes(), synth_sample["mp4"]):
        ref = every_frame(data)
        assert np.array_equal(decode(data, [3, 11, 4]).numpy(), np.stack([ref[3], ref[11], ref[4]]))


def test_cuda_decode_is_one_clear_error_without_cuda():
    if torch.cuda.is_available():
        data = (DATA / "lego_toy.mp4").read_bytes()
        got = get_decoder("torchcodec", "cuda")(data, [0, 5])
        assert got.is_cuda and got.shape[0] == 2
        return
    with pytest.raises(InputError, match="decode_device=cuda: this machine has no CUDA"):
        get_decoder("torchcodec", "cuda")
    with pytest.raises(ValueError, match="needs backend=torchcodec"):
        get_decoder("decord", "cuda")


def test_wav_window_matches_full_read():
    rate = 16000
    wave = np.sin(np.arange(3 * rate) * 0.01).astype(np.float32) * 0.5
    data = encode_wav(wave, rate)
    win = read_window(data, 1.25, 0.5, rate)
    assert np.allclose(win, wave[20000:28000], atol=1e-4)
    edge = read_window(data, 2.8, 0.5, rate)  # past the end: zero padded
    assert np.allclose(edge[: int(0.2 * rate)], wave[-int(0.2 * rate):], atol=1e-4)
    assert np.all(edge[int(0.2 * rate) + 1:] == 0)
    # the int16 window the workers ship is the same window, as stored
    pcm = read_pcm_window(data, 2.8, 0.5, rate)
    assert pcm.dtype == np.int16 and np.array_equal(pcm.astype(np.float32) / 32768.0, edge)
    before = read_pcm_window(data, -0.25, 0.5, rate)  # before the start: zero padded
    assert np.all(before[:4000] == 0) and np.array_equal(before[4000:], read_pcm_window(data, 0, 0.25, rate))
    with pytest.raises(ValueError, match="8000 Hz"):
        read_window(data, 0, 1, 8000)
    with pytest.raises(ValueError, match="RIFF"):
        read_window(b"not a wav at all", 0, 1)


def test_wav_window_reads_stereo_and_skips_other_chunks():
    """Channels are averaged, and chunks before the samples (LIST, odd-sized) are stepped over."""
    import struct
    rate, left = 8000, np.arange(4000, dtype="<i2")
    right = (-left) // 2
    pcm = np.stack([left, right], axis=1).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 2, rate, rate * 4, 4, 16)
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd size: one pad byte
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", len(pcm)) + pcm
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    win = read_window(data, 0.25, 0.125, rate)
    expect = (left[2000:3000].astype(np.float32) + right[2000:3000]) / 2 / 32768.0
    assert np.allclose(win, expect, atol=1e-7)
    assert np.abs(read_pcm_window(data, 0.25, 0.125, rate) / 32768.0 - expect).max() <= 0.5 / 32768 + 1e-9


def test_pyav_seeks_to_a_far_second_clip_and_keeps_exact_frames(synth_sample):
    """GDT's two clips a second or more apart: PyAV seeks between them (the shard's
    keyframe every second lies in the gap) instead of decoding through; same frames."""
    from pipeline.loader.decode import _runs
    data = synth_sample["mp4"]
    idx = [0, 1, 2, 3, 60, 61, 62, 63, 3, 61]
    assert _runs(sorted(set(idx)), 25) == [[0, 1, 2, 3], [60, 61, 62, 63]]
    ref = get_decoder("torchcodec")(data, idx)
    assert torch.equal(get_decoder("pyav")(data, idx), ref)
    assert torch.equal(get_decoder("decord")(data, idx), ref)
