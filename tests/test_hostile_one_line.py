"""One clear line, never a traceback, for hostile configs and exports (issue 26, item 7):
a self-referencing override, a config.json of 200,000 nested '[', crafted safetensors
headers, and a config.json whose widths would need a terabyte when no weights bound it.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from safetensors.torch import save_file

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.models.load import load_backbone
from pipeline.export.manifest import sha256_file, verify_export
from pipeline.models.registry import build_video

WIDTHS = [4, 8, 8, 16]


def export_folder(tmp_path: Path, args: dict | None = None, weights: bool = True) -> Path:
    folder = tmp_path / "export" / "video"
    folder.mkdir(parents=True, exist_ok=True)
    if weights:
        save_file(build_video("r3d_tiny", widths=WIDTHS).state_dict(), folder / "backbone.safetensors")
    (folder / "config.json").write_text(json.dumps({"format": 1, "kind": "video", "name": "r3d_tiny",
                                                    "args": args or {"widths": WIDTHS}}))
    return folder


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_self_referencing_override_is_one_line(tmp_path, capsys):
    assert main(["synth", "n_videos=${n_videos}", f"out={tmp_path / 'out'}"]) == 2
    assert "command line 'n_videos=${n_videos}'" in one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_deeply_nested_config_json_is_one_error(tmp_path):
    folder = export_folder(tmp_path)
    (folder / "config.json").write_text("[" * 200_000)
    with pytest.raises(InputError, match="nested too deeply"):
        load_backbone(folder)
    root = folder.parent  # the same file behind a manifest that vouches for it
    (root / "manifest.json").write_text(json.dumps({
        "format": 1, "run_id": "x", "kinds": ["video"], "files": {
            f"video/{p.name}": {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in folder.iterdir()}}))
    with pytest.raises(InputError, match="nested too deeply"):  # read by the one spec reader
        verify_export(root)
    (root / "manifest.json").write_text("{" * 200_000)
    with pytest.raises(InputError, match="manifest.json: unreadable"):
        verify_export(root)


def crafted(header: bytes, length: int | None = None, tail: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + tail


@pytest.mark.parametrize("blob", [
    crafted(b"", length=2 ** 63),                                            # a header larger than any file
    crafted(b"{not json"),                                                   # not JSON
    crafted(json.dumps({"w": {"dtype": "F32", "shape": [2 ** 40],
                              "data_offsets": [0, 2 ** 42]}}).encode()),     # data far beyond the file
    crafted(json.dumps({"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}).encode(), tail=b"\0" * 4),
    crafted(json.dumps({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}).encode(), tail=b"\0" * 4),
], ids=["huge-length", "not-json", "offsets-beyond-file", "unknown-dtype", "negative-shape"])
def test_a_crafted_safetensors_header_is_one_error(tmp_path, blob, capsys):
    folder = export_folder(tmp_path)
    (folder / "backbone.safetensors").write_bytes(blob)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_backbone(folder)


def test_random_init_without_weights_obeys_a_size_rule(tmp_path):
    huge = export_folder(tmp_path, {"widths": [2 ** 17] * 4}, weights=False)  # ~1 TB if built
    with pytest.raises(InputError, match=r"parameters and there is no backbone.safetensors"):
        load_backbone(huge, pretrained=False)
    small = export_folder(tmp_path / "small", weights=False)
    assert sum(p.numel() for p in load_backbone(small, pretrained=False).parameters()) > 0
