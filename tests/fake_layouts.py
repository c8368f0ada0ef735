"""Small fakes of the downstream datasets, laid out exactly as they are distributed.

Built from the synthetic corpus (``python -m pipeline synth``: its videos and labels) and
real recordings (tests/data/audio), converted with ffmpeg to each dataset's real file
names, containers and split-file formats, never from the real datasets:

* :func:`fake_ucf101`  ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (Xvid + MP3, classes
  without sound have no audio stream) + ``ucfTrainTestlist/`` (classInd.txt,
  trainlist0{1,2,3}.txt with 1-based class indices, testlist0{1,2,3}.txt; CRLF).
* :func:`fake_hmdb51`  ``<class>/<video>.avi`` + ``testTrainMulti_7030_splits/
  <class>_test_split{1,2,3}.txt`` (``name.avi 1 `` lines: 1 train, 2 test, 0 unused).
* :func:`fake_esc50`   ``audio/<fold>-<id>-<take>-<target>.wav`` (5 s, 44.1 kHz mono
  16-bit) + ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take).
* :func:`fake_generic` ``<class>/<video>.mp4`` + optional ``splits.csv`` (path, split).

Each returns a :class:`Fake`: the folder to pass as ``input=``, the classes in the
dataset's declared order, every file's class, and what each split holds. The tests of
the shard stage and of the downstream protocols import these.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DATA = Path(__file__).parent / "data"
ESC_SOUNDS = ("cat", "cow", "pig", "sheep")   # tests/data/audio/<name>.ogg, ESC-50 categories too
ESC_SECONDS, ESC_RATE = 5, 44100


@dataclass
class Fake:
    root: Path                                  # input= of the shard stage
    classes: list[str]                          # in the dataset's declared order
    files: dict[str, str]                       # path as the split files name it -> class
    splits: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # split -> subset -> paths
    silent: list[str] = field(default_factory=list)  # files written without an audio stream


def synth_rows(synth: Path) -> tuple[list[str], list[dict]]:
    """(class names in synth index order, manifest rows) of a synthetic corpus folder."""
    classes = [c["name"] for c in json.loads((synth / "classes.json").read_text())]
    rows = [json.loads(line) for line in (synth / "manifest.jsonl").read_text().splitlines() if line]
    return classes, rows


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True)


def _to_avi(src: Path, dst: Path, sound: bool) -> None:
    """Xvid video (+ MP3 audio, or no audio stream at all) in AVI, as UCF101/HMDB51 ship."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    audio = ["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "44100"] if sound else ["-an"]
    _ffmpeg(["-i", str(src), "-c:v", "libxvid", "-q:v", "5", "-threads", "1", *audio, str(dst)])


def _convert(jobs: list[tuple[Path, Path, bool]], workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda j: _to_avi(*j), jobs))


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _write(path: Path, lines: list[str], newline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))


def fake_ucf101(root: Path, synth: Path, groups: int = 4, silent_classes: int = 1,
                workers: int = 2) -> Fake:
    """UCF101 from a synthetic corpus: class c = synth class c (CamelCase), classInd in the
    synth index order (not alphabetical). A class's videos go round-robin into ``groups``
    groups (gXX), clips numbered within a group (cYY); split k tests group k (k = 1..3),
    trains on the rest, as the official splits hold whole groups out. The last
    ``silent_classes`` classes have no audio stream (like half of UCF101)."""
    names, rows = synth_rows(synth)
    classes = [_camel(n) for n in names]
    counts: dict[str, int] = {}
    files, group_of, jobs, silent = {}, {}, [], []
    for row in rows:
        cls = classes[names.index(row["label"])]
        j = counts[cls] = counts.get(cls, -1) + 1
        g, c = j % groups + 1, j // groups + 1
        rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
        sound = classes.index(cls) < len(classes) - silent_classes
        files[rel], group_of[rel] = cls, g
        jobs.append((synth / row["path"], root / "UCF-101" / rel, sound))
        if not sound:
            silent.append(rel)
    _convert(jobs, workers)
    lists = root / "ucfTrainTestlist"
    _write(lists / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)], "\r\n")
    splits = {}
    for k in (1, 2, 3):
        train = sorted(p for p in files if group_of[p] != k)
        test = sorted(p for p in files if group_of[p] == k)
        _write(lists / f"trainlist0{k}.txt", [f"{p} {classes.index(files[p]) + 1}" for p in train], "\r\n")
        _write(lists / f"testlist0{k}.txt", test, "\r\n")
        splits[k] = {"train": train, "test": test}
    return Fake(root, classes, files, splits, silent)


def fake_hmdb51(root: Path, synth: Path, silent_classes: int = 2, workers: int = 2) -> Fake:
    """HMDB51 from a synthetic corpus: lower-case class folders, HMDB-style video names,
    one ``<class>_test_split<k>.txt`` per class and split whose ids rotate with k over
    1, 1, 1, 2, 0 (train, train, train, test, unused). Classes are sorted by name."""
    names, rows = synth_rows(synth)
    counts: dict[str, int] = {}
    files, jobs, silent, order = {}, [], [], {}
    for row in rows:
        cls = row["label"]
        j = counts[cls] = counts.get(cls, -1) + 1
        rel = f"{cls}/Synth_clip_{j:03d}_{cls}_f_cm_np1_fr_med_{j % 3}.avi"
        sound = sorted(names).index(cls) < len(names) - silent_classes
        files[rel], order[rel] = cls, j
        jobs.append((synth / row["path"], root / rel, sound))
        if not sound:
            silent.append(rel)
    _convert(jobs, workers)
    lists = root / "testTrainMulti_7030_splits"
    splits = {}
    for k in (1, 2, 3):
        tag = {p: "11120"[(order[p] + k) % 5] for p in files}
        for cls in sorted(set(files.values())):
            mine = sorted(p for p in files if files[p] == cls)
            _write(lists / f"{cls}_test_split{k}.txt",
                   [f"{p.split('/', 1)[1]} {tag[p]} " for p in mine], "\n")
        splits[k] = {"train": sorted(p for p in files if tag[p] == "1"),
                     "test": sorted(p for p in files if tag[p] == "2"),
                     "unused": sorted(p for p in files if tag[p] == "0")}
    return Fake(root, sorted(set(files.values())), files, splits, silent)


def fake_esc50(root: Path, sounds: tuple[str, ...] = ESC_SOUNDS, per_fold: int = 1,
               workers: int = 2) -> Fake:
    """ESC-50 from real recordings: class t = ``sounds[t]`` (target t), ``per_fold`` clips
    of each class in each of the 5 folds, each 5 s at 44.1 kHz mono 16-bit PCM: a
    different excerpt and gain of the recording, padded with silence as ESC-50 clips are."""
    files, splits, jobs = {}, {1: {}}, []
    for target, name in enumerate(sounds):
        src = DATA / "audio" / f"{name}.ogg"
        for fold in range(1, 6):
            for i in range(per_fold):
                n = (fold - 1) * per_fold + i
                take = "ABCDEFGHIJ"[i % 10]
                clip_id = 100000 + 1000 * target + n
                fname = f"{fold}-{clip_id}-{take}-{target}.wav"
                files[fname] = name
                splits[1].setdefault(f"fold{fold}", []).append(fname)
                jobs.append(["-ss", f"{0.15 * n:.2f}", "-i", str(src), "-t", str(ESC_SECONDS),
                             "-af", f"volume={0.6 + 0.1 * (n % 5):.1f},apad=whole_len={ESC_SECONDS * ESC_RATE}",
                             "-ac", "1", "-ar", str(ESC_RATE), "-c:a", "pcm_s16le",
                             str(root / "audio" / fname)])
    (root / "audio").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_ffmpeg, jobs))
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fname, name in sorted(files.items()):
        fold, clip_id, take, target = fname[:-4].split("-")
        rows.append(f"{fname},{fold},{target},{name},{name in ('cow', 'pig')},{clip_id},{take}")
    _write(root / "meta" / "esc50.csv", rows, "\n")
    return Fake(root, list(sounds), files, splits)


def fake_generic(root: Path, synth: Path, split_of: Callable[[str], str] | None = None) -> Fake:
    """Class sub-folders of the synthetic mp4s (``<class>/<name>.mp4``); with ``split_of``
    (relative path -> split name) also a ``splits.csv`` listing every file."""
    _, rows = synth_rows(synth)
    files = {}
    for row in rows:
        rel = f"{row['label']}/{Path(row['path']).name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth / row["path"], root / rel)
        files[rel] = row["label"]
    fake = Fake(root, sorted(set(files.values())), files)
    if split_of is not None:
        split = {p: split_of(p) for p in sorted(files)}
        _write(root / "splits.csv", ["path,split"] + [f"{p},{s}" for p, s in split.items()], "\n")
        fake.splits[1] = {s: sorted(p for p in split if split[p] == s) for s in set(split.values())}
    return fake
