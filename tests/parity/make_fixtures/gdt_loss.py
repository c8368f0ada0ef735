"""Regenerate tests/parity/fixtures/gdt_loss.{safetensors,json} from the official GDT code.

Usage (the official checkout is NOT part of this project):
    git clone https://github.com/facebookresearch/GDT /tmp/GDT && git -C /tmp/GDT checkout 873e630
    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/parity/make_fixtures/gdt_loss.py \
        --official /tmp/GDT --out tests/parity/fixtures

What it does: imports the official ``main_gdt.train_one_epoch`` (with its ``gdt_helper``
and ``utils``) unmodified, stubs the modules it imports but never calls on this path
(datasets, model, pandas), maps ``cuda`` to CPU (the default ``device`` of
``gdt_helper.get_loss``) and runs one training step per simulated rank on fixed
embeddings: the "model" it is given looks up the rows of the fixed embeddings (then
L2-normalises them, as the official model's last layer does), ``torch.distributed``'s
``get_rank`` / ``get_world_size`` / ``all_gather`` are replaced by a rank-by-rank
simulation that hands each rank the other ranks' rows of the same view. The official
step back-propagates its loss; the gradients land on the fixed (leaf) embeddings. The
fixture holds, for hypotheses 1-9 at 2, 4 and 8 ranks: each rank's loss and their mean
(what a DDP run averages); at 2 and 4 ranks also the gradient of that mean w.r.t. the
embeddings.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

N, D, VIEWS, SEED = 8, 16, 4, 23
WORLDS = (2, 4, 8)  # 8 = one sample per rank
GRAD_WORLDS = (2, 4)  # gradients stored for these (fixture size)
# views of one official batch, in its torch.split order: video, videoR, video2, video2R;
# the project's layout (k = shift * 2 + reversal) has the same order
USED_VIEWS = {1: [0], 2: [0, 1], 3: [0, 1], 4: [0, 2], 5: [0, 2], 6: [0, 1, 2, 3], 7: [0, 1, 2, 3],
              8: [0, 1, 2, 3], 9: [0, 1, 2, 3]}


def embeddings() -> dict[str, torch.Tensor]:
    """Fixed raw embeddings [N, 4, D] (float64): a shared per-sample signal plus a per-view
    and per-modality part, so positives are closer than negatives but not trivially."""
    g = torch.Generator().manual_seed(SEED)
    base = torch.randn(N, 1, D, generator=g, dtype=torch.float64)
    out = {}
    for mod in ("video", "audio"):
        view = torch.randn(N, VIEWS, D, generator=g, dtype=torch.float64)
        out[mod] = base + 1.2 * view + 0.2 * torch.randn(1, VIEWS, D, generator=g, dtype=torch.float64)
    return out


def stub_imports() -> None:
    """Modules ``main_gdt`` imports but never calls in ``train_one_epoch``."""
    for name in ("pandas", "datasets.GDTPretrainDataset", "datasets.HT100MDataset", "model"):
        mod = types.ModuleType(name)
        mod.GDTPretrainDataset = mod.HT100M_Dataset = mod.GDT = mod.TextVid_GDT = None
        sys.modules[name] = mod
    sys.modules.setdefault("datasets", types.ModuleType("datasets"))


class Sim:
    """The simulated process group and the lookup "model" of one rank."""

    def __init__(self, raw: dict[str, torch.Tensor], world: int, rank: int):
        self.raw, self.world, self.rank = raw, world, rank
        self.n = N // world
        self.made: dict[int, tuple[str, int]] = {}  # data_ptr of a model output -> (modality, view)

    def feats(self, mod: str, view: int, rank: int) -> torch.Tensor:
        rows = slice(rank * self.n, (rank + 1) * self.n)
        return F.normalize(self.raw[mod][rows, view], p=2, dim=1)

    def train(self):  # the official step puts its model in training mode
        pass

    def __call__(self, video: torch.Tensor, audio: torch.Tensor):
        view = int(video[0, 0].item())  # the batch encodes each chunk's view index
        out = []
        for mod in ("video", "audio"):
            f = self.feats(mod, view, self.rank)
            self.made[f.data_ptr()] = (mod, view)
            out.append(f)
        return tuple(out)

    def all_gather(self, out_list, x):
        mod, view = self.made[x.data_ptr()]
        for r in range(self.world):
            out_list[r].copy_(self.feats(mod, view, r).detach())


class Opt:
    """Optimiser stand-in: the step must leave the embeddings' gradients alone."""
    param_groups = [{"lr": 0.0}]

    def zero_grad(self):
        pass

    def step(self):
        pass


def run_rank(main_gdt, raw, hyp: int, world: int, rank: int) -> float:
    sim = Sim(raw, world, rank)
    dist = main_gdt.dist  # torch.distributed as the official utils see it
    dist.get_world_size, dist.get_rank, dist.all_gather = (lambda *a: world), (lambda *a: rank), sim.all_gather
    n = sim.n
    video = torch.arange(VIEWS, dtype=torch.float64).repeat_interleave(3)[None, :, None].repeat(n, 1, 1)
    spec = torch.arange(VIEWS, dtype=torch.float64)[None, :, None].repeat(n, 1, 1)
    batch = (video, spec, None, None, None)
    args = argparse.Namespace(hypothesis=hyp, decode_audio=True, nce_t=0.07, distributed=False, rank=rank,
                              output_dir="/nonexistent", resume="False")
    loggers = []

    class Recorder(main_gdt.MetricLoggerGDT):
        """The official metric logger, remembered: its returned ``avg`` goes through a float32
        tensor, its ``global_avg`` (sum of ``loss.item()`` / count) keeps float64."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            loggers.append(self)

    main_gdt.MetricLoggerGDT = Recorder
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        main_gdt.train_one_epoch(args, [batch], sim, Opt(), "cpu", 0, 1, None)
    return float(loggers[-1].meters["loss"].global_avg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/GDT")
    ap.add_argument("--out", default="tests/parity/fixtures")
    ap.add_argument("--commit", default="", help="the checkout's commit, if it is an export without .git")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, a.official)
    stub_imports()
    import gdt_helper
    import main_gdt
    gdt_helper.get_loss.__defaults__ = (0.07, "cpu")  # cuda -> CPU (labels' device)
    os.environ["SIGNAL_RECEIVED"] = "False"

    raw = embeddings()
    tensors = {f"embed.{m}": t.clone() for m, t in raw.items()}
    numbers: dict = {}
    for hyp in range(1, 10):
        for world in WORLDS:
            leaf = {m: t.clone().requires_grad_(True) for m, t in raw.items()}
            per_rank = [run_rank(main_gdt, leaf, hyp, world, r) for r in range(world)]
            numbers[f"hyp{hyp}.world{world}"] = {"ranks": per_rank, "loss": sum(per_rank) / world}
            views = USED_VIEWS[hyp]
            for m, t in leaf.items() if world in GRAD_WORLDS else ():  # summed over ranks by the backward passes; DDP averages
                g = t.grad / world
                unused = [v for v in range(VIEWS) if v not in views]
                assert g[:, unused].abs().max() == 0 if unused else True
                tensors[f"grad.hyp{hyp}.world{world}.{m}"] = g[:, views].contiguous()
    commit = a.commit or subprocess.run(["git", "-C", a.official, "rev-parse", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()
    meta = {"official": "facebookresearch/GDT", "commit": commit, "n": N, "dim": D, "seed": SEED,
            "temperature": 0.07, "worlds": list(WORLDS), "grad_worlds": list(GRAD_WORLDS), "used_views": USED_VIEWS,
            "note": "loss = mean over simulated ranks of the official per-rank loss; grad.* = its gradient "
                    "w.r.t. the raw embeddings (before the L2 normalisation), views as used_views",
            "losses": numbers}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from pipeline.io.atomic import save_safetensors, write_json
    save_safetensors(out / "gdt_loss.safetensors", tensors)
    write_json(out / "gdt_loss.json", meta)
    for k, v in numbers.items():
        print(k, f"{v['loss']:.6f}", " ".join(f"{x:.6f}" for x in v["ranks"]))


if __name__ == "__main__":
    main()
