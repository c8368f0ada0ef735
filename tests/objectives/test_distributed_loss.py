"""On 2 real gloo ranks, the contrastive losses equal one process on the concatenated batch.

Each rank embeds its slice of the batch with a small DDP-wrapped model (two linear
layers + the objective, with a learned temperature where the objective has one) and
backpropagates its local loss. Expected, per the scaling contract in objectives/nce.py:
- the mean of the ranks' losses is the single-process loss;
- the DDP-averaged parameter gradients (temperature included) are the single-process ones;
- a rank's input gradients are world_size x the single-process ones (before averaging).
Splits are even (4, 4) and uneven (3, 5). One spawn serves all tests of this module.
"""
import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dist_utils import run_distributed
from pipeline.objectives.gdt import GDT, GDTConfig
from pipeline.objectives.nce import CrossModalNCE, NCEConfig, TemperatureConfig
from pipeline.objectives.simclr import SimCLR, SimCLRConfig

pytestmark = pytest.mark.distributed

D_IN, D = 12, 8
WORLD = 2
SPLITS = [(4, 4), (3, 5)]
CASES = {  # name -> (modality -> views per sample (0 = no view axis), objective factory)
    "nce": ({"video": 0, "audio": 0},
            lambda: CrossModalNCE(NCEConfig(temperature=TemperatureConfig(value=0.1, learn=True)))),
    "simclr": ({"video": 2}, lambda: SimCLR(SimCLRConfig(temperature=TemperatureConfig(value=0.2, learn=True)))),
    "gdt": ({"video": 4, "audio": 4},
            lambda: GDT(GDTConfig(reversal="variant", shift="invariant", temperature=TemperatureConfig(0.1, True)))),
    # the public code's terms, split-independent, gradients through the queries only
    "gdt_official": ({"video": 4, "audio": 4},
                     lambda: GDT(GDTConfig(reversal="variant", shift="invariant", form="official",
                                           temperature=TemperatureConfig(0.1, True)))),
}


class Net(nn.Module):
    """One linear embedding per modality followed by the objective (same init everywhere)."""

    def __init__(self, case: str):
        super().__init__()
        mods, make_objective = CASES[case]
        torch.manual_seed(0)
        self.embed = nn.ModuleDict({m: nn.Linear(D_IN, D) for m in mods})
        self.objective = make_objective()
        self.double()

    def forward(self, batch):
        return self.objective({m: f(batch[m]) for m, f in self.embed.items()})


def make_batch(case: str, n: int) -> dict:
    g = torch.Generator().manual_seed(1)
    mods = CASES[case][0]
    return {m: torch.randn(n, *((k,) if k else ()), D_IN, generator=g, dtype=torch.float64) for m, k in mods.items()}


def grads(net: nn.Module, batch: dict) -> dict:
    loss, _ = net(batch)
    loss.backward()
    return {"loss": loss.detach(), "inputs": {m: x.grad for m, x in batch.items()},
            "params": {k: p.grad.clone() for k, p in net.named_parameters()}}


def _rank_main(rank, world_size):
    out = {}
    for case in CASES:
        for split in SPLITS:
            lo, hi = sum(split[:rank]), sum(split[:rank + 1])
            local = {m: x[lo:hi].clone().requires_grad_(True) for m, x in make_batch(case, sum(split)).items()}
            ddp = DistributedDataParallel(Net(case))  # averages parameter gradients, like DeepSpeed
            res = grads(ddp, local)
            res["params"] = {k.removeprefix("module."): v for k, v in res["params"].items()}
            out[(case, split)] = res
    return out


@pytest.fixture(scope="module")
def ranks():
    return run_distributed(_rank_main, WORLD)


def single(case, split):
    batch = {m: x.requires_grad_(True) for m, x in make_batch(case, sum(split)).items()}
    return grads(Net(case), batch)


@pytest.mark.parametrize("split", SPLITS, ids=["even", "uneven"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_single_process(ranks, case, split):
    ref = single(case, split)
    parts = [r[(case, split)] for r in ranks]
    mean_loss = sum(p["loss"] for p in parts) / WORLD
    assert torch.allclose(mean_loss, ref["loss"], atol=1e-10), (mean_loss, ref["loss"])
    for m, g in ref["inputs"].items():
        got = torch.cat([p["inputs"][m] for p in parts]) / WORLD
        assert torch.allclose(got, g, atol=1e-10), m
    assert any("log_t" in k for k in ref["params"])  # the learned temperature is compared too
    for k, g in ref["params"].items():
        for p in parts:
            assert torch.allclose(p["params"][k], g, atol=1e-10), k


def test_nt_xent_value_matches_metric_learning(ranks):
    """The 2-rank NT-Xent (mean of ranks) equals pytorch-metric-learning on the full batch."""
    from pytorch_metric_learning.losses import NTXentLoss  # here: the spawned ranks need not import it
    split = SPLITS[1]
    net = Net("simclr")
    with torch.no_grad():
        z = net.embed["video"](make_batch("simclr", sum(split))["video"])
    ref = NTXentLoss(temperature=0.2)(torch.cat([z[:, 0], z[:, 1]]), torch.arange(sum(split)).repeat(2))
    mean_loss = sum(r[("simclr", split)]["loss"] for r in ranks) / WORLD
    assert torch.allclose(mean_loss, ref.double(), atol=1e-6)
