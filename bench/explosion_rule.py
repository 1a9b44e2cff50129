"""False alarms and detection delay of candidate gradient-spike rules, on real Fashion-MNIST trainings.

The rule of `ExplosionDetector` must stay quiet on healthy training at every batch size (the GN
paper's axis runs down to batch 2, where the gradient norm is noisy) and fire at or near the first
bad step of a real divergence. Recording traces once and replaying every candidate rule on them
offline is exact (a rule only reads the per-step global gradient norm and loss) and cheap.

    python -m bench.explosion_rule record   # trains every case, writes bench/results/explosion_traces.json
    python -m bench.explosion_rule          # replays the rules on the recorded traces, prints the table

Each case trains in-process (no Trainer) on the first `TRAIN_IMAGES` Fashion-MNIST training images
(Debian's dataset-fashion-mnist), with the quickstart's optimization (Adam, one-cycle schedule) for
healthy runs, and records per step the loss and the global gradient norm as the detector computes
it (before the optimizer step). Divergences: SGD and Adam at learning rates far above stable, from
the start, and a healthy run whose learning rate is multiplied mid-run.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from callbacks.compat import foreach_norm
from datamodules.mnist import FashionMNISTDataModule, read_idx
from models.classifier import ImageClassifier
from models.optim import build_optimizer, lr_multiplier, parameter_groups

SYSTEM_DIR = Path(FashionMNISTDataModule.system_dirs[0])
TRACES = Path(__file__).parent / "results" / "explosion_traces.json"
TRAIN_IMAGES, TEST_IMAGES = 12000, 2000

class Case(NamedTuple):
    name: str
    backbone: str
    norm: str
    batch: int
    steps: int
    optimizer: str
    lr: float
    schedule: str = "onecycle"  # the quickstart's; a divergence from the start uses "constant"
    jump_at: int | None = None  # from this step on the LR is multiplied by `jump`
    jump: float = 1.0


HEALTHY = [
    *[Case(f"small_cnn {norm} b{batch}", "small_cnn", norm, batch, steps, "adam", 0.003)
      for norm in ("bn", "gn") for batch, steps in ((2, 20000), (8, 6000), (32, 2000), (128, 800))],
    # SGD at 0.1·batch/128 (the GN paper's rule, Appendix B.1) at batch 2 and 8; 0.02 at batch 32.
    *[Case(f"vgg11 {norm} b{batch}", "vgg11", norm, batch, steps, "sgd", lr)
      for norm in ("bn", "gn") for batch, steps, lr in ((2, 400, 0.0016), (8, 250, 0.00625), (32, 120, 0.02))],
]
DIVERGING = [
    Case("small_cnn gn+ sgd lr50 b128", "small_cnn", "gn_plus_gn_first", 128, 60, "sgd", 50.0, "constant"),
    Case("small_cnn bn sgd lr5 b32", "small_cnn", "bn", 32, 100, "sgd", 5.0, "constant"),
    Case("small_cnn gn sgd lr5 b8", "small_cnn", "gn", 8, 100, "sgd", 5.0, "constant"),
    Case("small_cnn bn adam lr1 b32", "small_cnn", "bn", 32, 100, "adam", 1.0, "constant"),
    Case("small_cnn gn adam lr10 b8", "small_cnn", "gn", 8, 100, "adam", 10.0, "constant"),
    Case("small_cnn bn sgd lr0.05 x1000@150 b8", "small_cnn", "bn", 8, 250, "sgd", 0.05, jump_at=150, jump=1000.0),
    Case("small_cnn gn adam lr0.003 x300@150 b2", "small_cnn", "gn", 2, 250, "adam", 0.003, jump_at=150,
         jump=300.0),
]


def load_subset(train: bool, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images = read_idx(SYSTEM_DIR / f"{prefix}-images-idx3-ubyte.gz")[:count]
    labels = read_idx(SYSTEM_DIR / f"{prefix}-labels-idx1-ubyte.gz")[:count]
    mean, std = FashionMNISTDataModule.mean[0], FashionMNISTDataModule.std[0]
    x = (torch.from_numpy(images.copy()).float().unsqueeze(1) / 255 - mean) / std
    return x, torch.from_numpy(labels.astype("int64"))


def record_case(case: Case, train: tuple, test: tuple) -> dict:
    torch.manual_seed(0)
    model = ImageClassifier(backbone=case.backbone, norm=case.norm,
                            norm_groups=4 if case.backbone == "small_cnn" else 32, in_channels=1, image_size=28,
                            optimizer=case.optimizer, lr=case.lr)
    groups = parameter_groups(model.net, 0.0, False, 1.0, case.lr)
    optimizer = build_optimizer(case.optimizer, groups, case.lr, 0.9, (0.9, 0.999))
    base = lr_multiplier(case.schedule, case.steps, case.steps, [], 0.1, 30, 0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: base(t) * (case.jump if case.jump_at is not None and t >= case.jump_at else 1.0))
    x, y = train
    generator = torch.Generator().manual_seed(0)
    per_epoch = len(y) // case.batch
    losses, norms = [], []
    started = time.perf_counter()
    model.train()
    for step in range(case.steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(y), generator=generator)
        index = order[(step % per_epoch) * case.batch:(step % per_epoch + 1) * case.batch]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm_value = float(torch.linalg.vector_norm(torch.stack(foreach_norm(grads)).float()))
        losses.append(float(loss.detach()))
        norms.append(norm_value)
        if not (math.isfinite(losses[-1]) and math.isfinite(norm_value)):
            break  # a divergence's trace ends at its first non-finite value: the detector stops there
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(test[0][i:i + 500]) for i in range(0, len(test[1]), 500)])
    accuracy = float((logits.argmax(1) == test[1]).float().mean())
    return {"name": case.name, "batch": case.batch, "losses": losses, "grad_norms": norms,
            "test_acc": accuracy, "seconds": round(time.perf_counter() - started, 1)}


def record(names: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    train, test = load_subset(True, TRAIN_IMAGES), load_subset(False, TEST_IMAGES)
    traces = json.loads(TRACES.read_text()) if TRACES.is_file() else {"healthy": {}, "diverging": {}}
    for kind, cases in (("healthy", HEALTHY), ("diverging", DIVERGING)):
        for case in cases:
            if names and case.name not in names or not names and case.name in traces[kind]:
                continue
            traces[kind][case.name] = t = record_case(case, train, test)
            print(f"{case.name}: {len(t['losses'])} steps, test acc {t['test_acc']:.3f}, {t['seconds']} s",
                  flush=True)
            TRACES.parent.mkdir(parents=True, exist_ok=True)
            TRACES.write_text(json.dumps(traces))


# -- rules: each returns the steps at which it fires, given one trace --------------------------------
def nonfinite_step(losses: list[float], norms: list[float]) -> int | None:
    return next((t for t, (l, g) in enumerate(zip(losses, norms)) if not (math.isfinite(l) and math.isfinite(g))),
                None)


def ratio_rule(norms: list[float], factor: float, window: int, warmup: int, patience: int = 1,
               quantile: float = 0.5) -> list[int]:
    """`grad/norm` > factor × the running lower `quantile` of the last `window` norms, for `patience`
    steps in a row (the rule of `ExplosionDetector`; quantile 0.5 and patience 1 is the original rule)."""
    fired, run = [], 0
    for t, g in enumerate(norms):
        history = sorted(norms[max(0, t - window):t])
        over = t >= warmup and bool(history) and g > factor * history[int(quantile * (len(history) - 1))]
        run = run + 1 if over else 0
        if run == patience:
            fired.append(t)
            run = 0
    return fired


def robust_z_rule(norms: list[float], threshold: float, window: int, warmup: int) -> list[int]:
    """log `grad/norm` more than `threshold` robust standard deviations (1.4826 · MAD) above the
    running median of the last `window` log norms."""
    logs = [math.log(max(g, 1e-30)) for g in norms]
    fired = []
    for t in range(warmup, len(logs)):
        history = logs[max(0, t - window):t]
        median = statistics.median(history)
        mad = statistics.median(abs(v - median) for v in history) * 1.4826
        if logs[t] - median > threshold * max(mad, 1e-3):
            fired.append(t)
    return fired


RULES = {
    "old: 10x median": lambda g: ratio_rule(g, 10.0, 100, 1),
    "10x median, 3 in a row": lambda g: ratio_rule(g, 10.0, 100, 1, patience=3),
    "100x median": lambda g: ratio_rule(g, 100.0, 100, 1),
    "log-norm z > 8": lambda g: robust_z_rule(g, 8.0, 100, 20),
    "10x q0.9 (default)": lambda g: ratio_rule(g, 10.0, 100, 1, quantile=0.9),
    "30x q0.9": lambda g: ratio_rule(g, 30.0, 100, 1, quantile=0.9),
    "10x max": lambda g: ratio_rule(g, 10.0, 100, 1, quantile=1.0),
}


def reference_ratios(norms: list[float]) -> list[float]:
    """Each step's norm over the default reference (the lower 0.9 quantile of the last 100 norms), from
    step 1 on: how far healthy runs stay below the factor 10, and how far divergences go above it."""
    ratios = []
    for t in range(1, len(norms)):
        history = sorted(norms[max(0, t - 100):t])
        ratios.append(norms[t] / history[int(0.9 * (len(history) - 1))])
    return ratios


def onset(losses: list[float], norms: list[float], jump_at: int | None) -> int:
    """A divergence's first bad step: the first non-finite value or loss above twice chance level
    (2·ln 10) at or after the LR change."""
    start = jump_at or 0
    for t in range(start, len(losses)):
        if not (math.isfinite(losses[t]) and math.isfinite(norms[t])) or losses[t] > 2 * math.log(10):
            return t
    return len(losses)


def run() -> list[dict]:
    if not TRACES.is_file():
        record()
    traces = json.loads(TRACES.read_text())
    rows = []
    for name, t in traces["healthy"].items():
        row = {"case": name, "kind": "healthy", "steps": len(t["losses"]), "test_acc": round(t["test_acc"], 3)}
        row.update({rule: len(fires(t["grad_norms"])) for rule, fires in RULES.items()})
        row["max norm / q0.9"] = round(max(reference_ratios(t["grad_norms"]), default=0.0), 2)
        rows.append(row)
    jumps = {case.name: case.jump_at for case in DIVERGING}
    for name, t in traces["diverging"].items():
        bad = onset(t["losses"], t["grad_norms"], jumps.get(name))
        first_nonfinite = nonfinite_step(t["losses"], t["grad_norms"])
        row = {"case": name, "kind": f"diverging (onset {bad}, non-finite "
                                     f"{'none' if first_nonfinite is None else first_nonfinite})",
               "steps": len(t["losses"]), "test_acc": round(t["test_acc"], 3)}
        for rule, fires in RULES.items():
            hits = [s for s in fires(t["grad_norms"]) if s >= (jumps.get(name) or 0)]
            detected = min([*hits, *([first_nonfinite] if first_nonfinite is not None else [])], default=None)
            row[rule] = "missed" if detected is None else f"{detected - bad:+d}"
        ratios = reference_ratios(t["grad_norms"])
        row["max norm / q0.9"] = f"{ratios[bad - 1]:.3g} at onset" if bad <= len(ratios) else "n/a"
        rows.append(row)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        record(sys.argv[2:] or None)
    else:
        from bench.__main__ import print_table

        print_table("explosion_rule", run())
