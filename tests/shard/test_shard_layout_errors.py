"""Malformed dataset layouts (split lists, ESC-50 metadata) and layout options: one error
naming the file and line, before any work. The layouts read well in test_shard_layouts.py."""
import shutil
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, InputError
from test_shard_layouts import shard

DATA = Path(__file__).resolve().parents[1] / "data"


def _ucf_lists(root: Path, classind: str, train: str, test: str) -> Path:
    (root / "UCF-101").mkdir(parents=True)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(classind.encode())
    (lists / "trainlist01.txt").write_bytes(train.encode())
    (lists / "testlist01.txt").write_bytes(test.encode())
    shutil.copy(DATA / "lego_toy.mp4", root / "UCF-101" / "x.mp4")
    return root


CI = "1 Archery\r\n2 Bowling\r\n"
TR = "Archery/v_Archery_g08_c01.avi 1\r\n"
TE = "Bowling/v_Bowling_g01_c01.avi\r\n"


@pytest.mark.parametrize("classind, train, test, where, message", [
    ("1 Archery\r\n3 Bowling\r\n", TR, TE, "classInd.txt:2", "expected 2"),
    ("Archery\r\n", TR, TE, "classInd.txt:1", "<index> <ClassName>"),
    (CI, "Archery/v_Archery_g08_c01.avi 2\r\n", TE, "trainlist01.txt:1", "does not match"),
    (CI, TR + "Archery/v_Archery_g08_c02.avi\r\n", TE, "trainlist01.txt:2", "class index"),
    (CI, TR, "Bowling/v_Bowling_g01_c01.avi 2\r\n", "testlist01.txt:1", "expected '<Class>/<video>.avi'"),
    (CI, TR, "Fencing/v_Fencing_g01_c01.avi\r\n", "testlist01.txt:1", "not in classInd"),
    (CI, TR, "../v_Bowling_g01_c01.avi\r\n", "testlist01.txt:1", "<Class>/<video>"),
])
def test_malformed_ucf101_lists_name_file_and_line(tmp_path, classind, train, test, where, message):
    root = _ucf_lists(tmp_path / "ucf", classind, train, test)
    with pytest.raises(InputError, match=rf"{where}: .*{message}"):
        shard(f"input={root}", f"output={tmp_path / 'out'}", "dataset=ucf101")
    assert not (tmp_path / "out").exists()  # nothing written before the error


def test_malformed_hmdb51_and_esc50_files_name_file_and_line(tmp_path):
    hmdb = tmp_path / "hmdb"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    (hmdb / "run").mkdir()
    shutil.copy(DATA / "lego_toy.mp4", hmdb / "run" / "a.avi")
    (hmdb / "testTrainMulti_7030_splits" / "run_test_split1.txt").write_text("a.avi 1 \nb.avi 3 \n")
    with pytest.raises(InputError, match=r"run_test_split1.txt:2: expected '<video>.avi <0\|1\|2>'"):
        shard(f"input={hmdb}", f"output={tmp_path / 'o1'}", "dataset=hmdb51")
    esc = tmp_path / "esc"
    (esc / "audio").mkdir(parents=True)
    (esc / "meta").mkdir()
    head = "filename,fold,target,category,esc10,src_file,take\n"
    for body, message in [("1-1-A-0.wav,7,0,dog,False,1,A\n", r"esc50.csv:2: fold 7"),
                          ("1-1-A-0.wav,1,0,dog,False,1,A\n1-2-A-0.wav,2,0,cat,False,2,A\n",
                           r"esc50.csv:3: target 0 is 'cat'"),
                          ("1-1-A-1.wav,1,1,dog,False,1,A\n", r"targets must run 0..K-1"),
                          ("1-1-A-0.wav,one,0,dog,False,1,A\n", r"esc50.csv:2: 'fold' must be an integer")]:
        (esc / "meta" / "esc50.csv").write_text(head + body)
        with pytest.raises(InputError, match=message):
            shard(f"input={esc}", f"output={tmp_path / 'o2'}", "dataset=esc50")
    (esc / "meta" / "esc50.csv").write_text("filename,fold\n")
    with pytest.raises(InputError, match=r"esc50.csv:1: missing column"):
        shard(f"input={esc}", f"output={tmp_path / 'o2'}", "dataset=esc50")
    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    shutil.copy(DATA / "lego_toy.mp4", folder / "a" / "x.mp4")
    (folder / "splits.csv").write_text("path,split\na/x.mp4,train\na/y.mp4,te st\n")
    with pytest.raises(InputError, match=r"splits.csv:3: split 'te st' is not a usable folder name"):
        shard(f"input={folder}", f"output={tmp_path / 'o3'}")


def test_layout_options_are_checked(tmp_path):
    root = _ucf_lists(tmp_path / "ucf", CI, TR, TE)
    with pytest.raises(ConfigError, match="'split': 4; must be >= 1, <= 3"):
        shard(f"input={root}", f"output={tmp_path / 'o'}", "dataset=ucf101", "split=4")
    with pytest.raises(ConfigError, match="'dataset': 'kinetics'; must be one of 'generic'"):
        shard(f"input={root}", f"output={tmp_path / 'o'}", "dataset=kinetics")
    with pytest.raises(ConfigError, match="only the ucf101 and hmdb51 layouts"):
        shard(f"input={root}", f"output={tmp_path / 'o'}", "split=1")
    with pytest.raises(ConfigError, match=r"'holdout': 1.5; must be >= 0, < 1"):
        shard(f"input={root}", f"output={tmp_path / 'o'}", "holdout=1.5")
    with pytest.raises(InputError, match="a UCF101 layout holds UCF-101/"):
        shard(f"input={DATA}", f"output={tmp_path / 'o'}", "dataset=ucf101")
