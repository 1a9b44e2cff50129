"""The `lightning fit` process as a user runs it, against a plain PyTorch loop: time per training step.

`lightning fit --config configs/quickstart.yaml --model.norm bn` (every callback the CLI adds: the
explosion detector, run summary, RNG state, SLURM requeue, periodic `last.ckpt`, the CSV logger,
the λ tracker of the quickstart, the progress bar), with validation and the final test off, and
`bench/plain_loop.py`: the same network, batches, optimizer and schedule in a hand-written loop. Both
are separate processes, run at two step counts; the per-step time is the difference of the two
runs' times over the difference of their steps, so start-up (imports, data loading, the Trainer's
set-up) cancels. Candidates run round-robin, one thread each (`OMP_NUM_THREADS=1` unless set);
wall and CPU (user + system) times are both kept: on a shared machine the CPU time is the steadier.
Before timing, one run of each at the short step count must log the same losses (the fit's
`metrics.csv` against the loop's), or the benchmark stops: both must do the same work.

Targets (on a CPU): fit ≤ 1.10× the plain loop per step at batch 4, ≤ 1.03× at batch 128.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.timing import interleaved_process_medians, load_average, process_seconds

ROOT = Path(__file__).resolve().parent.parent
STEPS = {4: (300, 1500), 128: (20, 100)}  # batch -> (short, long) step counts
REPEATS = 3
FIT_ARGS = ["--config", "configs/quickstart.yaml", "--model.norm", "bn", "--trainer.limit_val_batches", "0",
            "--test_after_fit", "false"]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}


def fit_command(batch: int, steps: int, root: str) -> list[str]:
    return [sys.executable, "-m", "lightning_app", "fit", *FIT_ARGS, "--data.init_args.batch_size", str(batch),
            "--trainer.max_steps", str(steps), "--trainer.default_root_dir", root, "--experiment", "bench"]


def plain_command(batch: int, steps: int, losses: str) -> list[str]:
    return [sys.executable, "-m", "bench.plain_loop", "--batch", str(batch), "--steps", str(steps), "--losses", losses]


def run_in_scratch(make_command, keep: dict | None = None) -> tuple[float, float]:
    """Run `make_command(scratch folder)` in a fresh folder; `keep` gets the folder (deleted otherwise)."""
    scratch = tempfile.mkdtemp(prefix="normlab-bench-")
    seconds = process_seconds(make_command(scratch), env=environment(), log=os.path.join(scratch, "output.log"),
                              cwd=ROOT)
    if keep is None:
        shutil.rmtree(scratch)
    else:
        keep["dir"] = scratch
    return seconds


def check_same_training(batch: int, steps: int) -> None:
    """One run of each: the losses of the logged steps must be equal, or they did not do the same work."""
    fit, plain = {}, {}
    run_in_scratch(lambda d: fit_command(batch, steps, d), keep=fit)
    run_in_scratch(lambda d: plain_command(batch, steps, os.path.join(d, "losses.json")), keep=plain)
    rows = list(csv.DictReader(open(next(Path(fit["dir"]).glob("bench/*/metrics.csv")))))
    fit_losses = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    plain_losses = {int(k): v for k, v in json.loads(Path(plain["dir"], "losses.json").read_text())["losses"].items()}
    if fit_losses != plain_losses or not fit_losses:
        raise RuntimeError(f"batch {batch}: the fit and the plain loop trained differently (logged losses "
                           f"{fit_losses} vs {plain_losses}; outputs in {fit['dir']}, {plain['dir']})")
    shutil.rmtree(fit["dir"]), shutil.rmtree(plain["dir"])


def run() -> list[dict]:
    rows = []
    for batch, (short, long) in STEPS.items():
        check_same_training(batch, short)
        candidates = {}
        for steps in (short, long):
            candidates["plain", steps] = lambda s=steps: run_in_scratch(
                lambda d: plain_command(batch, s, os.path.join(d, "losses.json")))
            candidates["fit", steps] = lambda s=steps: run_in_scratch(lambda d: fit_command(batch, s, d))
        load_before = load_average()
        medians = interleaved_process_medians(candidates, REPEATS)
        per_step = {case: {kind: (medians[case, long][kind] - medians[case, short][kind]) / (long - short)
                           for kind in ("wall", "cpu")} for case in ("plain", "fit")}
        for case, label in (("plain", "plain PyTorch loop"), ("fit", "lightning fit")):
            rows.append({"batch": batch, "case": label, "steps": f"{short} / {long}",
                         "wall_s": f"{medians[case, short]['wall']:.1f} / {medians[case, long]['wall']:.1f}",
                         "cpu_s": f"{medians[case, short]['cpu']:.1f} / {medians[case, long]['cpu']:.1f}",
                         "ms_per_step_wall": round(1e3 * per_step[case]["wall"], 2),
                         "ms_per_step_cpu": round(1e3 * per_step[case]["cpu"], 2),
                         "ratio_wall": round(per_step[case]["wall"] / per_step["plain"]["wall"], 3),
                         "ratio_cpu": round(per_step[case]["cpu"] / per_step["plain"]["cpu"], 3),
                         "load": f"{load_before} -> {load_average()}"})
    return rows
