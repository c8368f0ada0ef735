"""``python -m pipeline import CHECKPOINT out=DIR``: a published checkpoint (GDT K400 /
HowTo100M / IG65M, SeLaVi VGG-Sound / Kinetics / AVE / Kinetics-Sound, torchvision's
supervised ``r2plus1d_18``) as an export folder, the same format ``export`` writes, so
``load_backbone``, ``eval`` and ``finetune`` use it unchanged.

Why weights-only: a ``.pth`` file is a pickle, and a pickle can run code when read. The
checkpoint is read with ``torch.load(weights_only=True)``, which builds tensors and plain
containers only; ``argparse.Namespace`` (the official scripts save their arguments in it)
is the one extra class allowed, an attribute bag whose loading runs no code. A file that
needs more is refused with the classes it asks for. The layout is then renamed key by key
(``pipeline.importer.layouts``), every tower is built on the meta device and compared with
the renamed tensors (names and shapes, strictly), and the folder is built aside and
swapped in, so ``out`` is either the old export or the whole new one.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.config import MISSING, to_yaml
from pipeline.errors import InputError
from pipeline.export.stage import ExportPart, is_export, write_export
from pipeline.importer.layouts import LayoutError, Mapped, Tower, map_state, strip_module
from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import BUILDERS

log = logging.getLogger(__name__)
SAFE_EXTRA = [argparse.Namespace]


@dataclass
class ImportConfig:
    checkpoint: str = field(default=MISSING, metadata={
        "help": "published checkpoint (.pth): GDT (gdt_K400.pth, gdt_HT100M.pth, gdt_IG65M.pth), SeLaVi "
                "(selavi_vgg_sound.pth, selavi_kinetics.pth, selavi_ave.pth, selavi_kinetics_sound.pth) or "
                "torchvision's r2plus1d_18 Kinetics-400 state dict; read with torch.load(weights_only=True)"})
    out: str = field(default=MISSING, metadata={
        "help": "export folder to write (one sub-folder per modality); an existing export there is replaced"})
    head: int = field(default=0, metadata={
        "help": "SeLaVi only: which clustering head (0 .. heads-1) becomes each modality's head", "min": 0})


def _needs(path: Path, err: Exception) -> str:
    """The classes or functions a checkpoint asks the unpickler for ("" when the refusal
    was about something else, e.g. a file that is no pickle at all)."""
    with contextlib.suppress(Exception):
        found = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                 if n != "argparse.Namespace"]
        if found:
            return ", ".join(found)
    match = re.search(r"GLOBAL ([\w.]+)", str(err))
    return match.group(1) if match else ""


def _why(err: Exception) -> str:
    text = str(err).strip()
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return (detail.group(1) if detail else text.splitlines()[0] if text else type(err).__name__).strip()


def read_checkpoint(path: Path) -> object:
    """The checkpoint's content, read weights-only on the CPU; InputError names the file."""
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(SAFE_EXTRA):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        needs = _needs(path, err)
        if not needs:
            raise InputError(f"{path}: not a readable PyTorch checkpoint ({_why(err)})") from None
        raise InputError(
            f"{path}: needs more than torch.load(weights_only=True) may read (it pickles code: {needs}); "
            f"import reads tensors and plain data only. Where you trust the file, keep its weights alone: "
            f"python -c \"import torch; c = torch.load('{path}', weights_only=False); "
            f"torch.save({{'model': c['model']}}, '{path.with_suffix('.weights.pth')}')\"") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_why(err)})") from None


def state_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The model's state dict inside a checkpoint: ``obj['model']`` (GDT, SeLaVi),
    ``obj['state_dict']`` or the object itself (torchvision); ``module.`` stripped."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = (f"a dict with keys {', '.join(map(str, list(obj)[:8]))}" if isinstance(obj, dict)
                 else type(obj).__name__)
        raise InputError(f"{path}: no state dict of tensors found (top level: {found}); expected one at "
                         "'model', 'state_dict' or the top level")
    return strip_module(obj)


def _check(path: Path, what: str, build, have: dict[str, torch.Tensor]) -> int:
    """InputError unless ``build()`` has exactly ``have``'s tensor names and shapes; the
    built module's ``out_dim``."""
    with torch.device("meta"):
        net = build()
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in have.items()}
    if want != got:
        odd = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got[k]]
        k = odd[0]
        raise InputError(f"{path}: the {what} does not fit the project's model: {k!r} is "
                         f"{got.get(k, 'missing')} in the checkpoint, {want.get(k, 'absent')} in the project")
    return int(net.out_dim)


def _spec(tower: Tower, mapped: Mapped, path: Path, digest: str, out_dim: int) -> dict:
    spec = {"format": 1, "kind": tower.kind, "name": tower.name, "args": tower.args, "out_dim": out_dim,
            "input": tower.input, "method": mapped.method, "source": str(path),
            "import": {"layout": mapped.layout, "sha256": digest, "dropped": mapped.dropped}}
    if tower.head is not None:
        w0, w3 = tower.head["net.0.weight"], tower.head["net.3.weight"]
        spec["head"] = {"in_dim": int(w0.shape[1]), "hidden": int(w0.shape[0]), "out_dim": int(w3.shape[0]),
                        "normalize": tower.normalize}
    return spec


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def import_checkpoint(path: Path, out: Path, head: int = 0, cfg: ImportConfig | None = None) -> dict:
    """Write ``path``'s towers to ``out`` in the export format; {kind: folder}."""
    if out.exists() and not is_export(out):  # before reading a possibly large checkpoint
        raise InputError(f"{out}: exists and is not an export folder; choose a new or empty folder")
    state = state_of(read_checkpoint(path), path)
    try:
        mapped = map_state(state, head)
    except LayoutError as err:
        raise InputError(f"{path}: {err}") from None
    dims = {}
    for t in mapped.towers:
        dims[t.kind] = _check(path, f"{t.kind} backbone", lambda: BUILDERS[t.kind](t.name, **t.args), t.backbone)
        if t.head is not None:
            w0, w3 = t.head["net.0.weight"], t.head["net.3.weight"]
            _check(path, f"{t.kind} head", lambda: ProjectionHead(w0.shape[1], w3.shape[0], w0.shape[0]), t.head)
    digest = _sha256(path)
    parts = [ExportPart(t.kind, _spec(t, mapped, path, digest, dims[t.kind]), t.backbone, t.head)
             for t in mapped.towers]
    files = {"import_config.yaml": to_yaml(cfg)} if cfg is not None else None
    # the same writer as ``export``: built aside, manifest last, swapped in whole; the
    # checkpoint's SHA-256 is the run id that eval checks every part against
    write_export(out, parts, digest, str(path), files=files)
    for prefix, why in mapped.dropped.items():
        log.info("dropped %s* (%s)", prefix, why)
    log.info("imported %s (%s layout) -> %s: %s", path, mapped.layout, out,
             ", ".join(t.kind for t in mapped.towers))
    return {t.kind: str(out / t.kind) for t in mapped.towers}


def run(cfg: ImportConfig) -> dict:
    return import_checkpoint(Path(cfg.checkpoint), Path(cfg.out), cfg.head, cfg)
