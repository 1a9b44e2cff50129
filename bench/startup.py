"""Start-up time of the `lightning` commands that do not train, and of `lightning fit --help` beside them.

Each command is its own process (`python -m lightning_app ...`, what the `lightning` script runs),
timed round-robin (`REPEATS`), wall and CPU time (user + system: on a shared machine the steadier);
one more run of each under `python -X importtime` says whether it imported torch or Lightning.
Target: ≤ 2 s each on this project's machine (issue 27 measured 5.9 s for `--help`, 6.4 s for
`report --help`, 7.4 s for `report` on an empty folder and 11.6 s for the batch-size study's
`sweep --dry-run` before).

`lightning report` reads a folder of real runs: four short `lightning fit` runs made first (bn and gn,
batch 8 and 32, 20 steps and a validation). `lightning sweep --dry-run` plans the batch-size study
(60 runs) twice: with an empty run-name cache (the first plan of a sweep: NormlabCLI's parser names
every run, which needs torch and Lightning) and with the cache a plan left (every later plan).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.timing import interleaved_process_medians, load_average, process_seconds

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
TARGET_S = 2.0
HEAVY = ("torch", "pytorch_lightning")
SWEEP = ["sweep", "--config", "configs/sweeps/batch_size_study.yaml", "--dry-run"]


def environment(cache_dir: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT),
            "NORMLAB_CACHE_DIR": cache_dir}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightning_app", *args]


def make_runs(root: Path, env: dict[str, str]) -> None:
    for norm in ("bn", "gn"):
        for batch in (8, 32):
            process_seconds(command("fit", "--config", "configs/quickstart.yaml", "--model.norm", norm,
                                    "--data.init_args.batch_size", str(batch), "--trainer.max_epochs", "1",
                                    "--trainer.limit_train_batches", "20", "--trainer.limit_val_batches", "2",
                                    "--test_after_fit", "false", "--trainer.default_root_dir", str(root),
                                    "--experiment", "startup_bench"), env=env, cwd=ROOT)


def imported_heavy(args: list[str], env: dict[str, str]) -> list[str]:
    """Which of HEAVY the command imported (`python -X importtime` lists every module on stderr)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *command(*args)[1:]], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    modules = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in modules]


def run() -> list[dict]:
    scratch = Path(tempfile.mkdtemp(prefix="normlab-startup-"))
    warm_cache, runs = str(scratch / "warm-cache"), scratch / "runs"
    env = environment(warm_cache)
    make_runs(runs, env)
    process_seconds(command(*SWEEP), env=env, cwd=ROOT)  # leaves the run-name cache a later plan reads

    def cold_sweep() -> tuple[float, float]:
        cold_cache = tempfile.mkdtemp(prefix="cold-cache-", dir=scratch)
        return process_seconds(command(*SWEEP), env=environment(cold_cache), cwd=ROOT)

    cases = {
        "lightning --help": ["--help"],
        "lightning report --help": ["report", "--help"],
        "lightning sweep --help": ["sweep", "--help"],
        "lightning report RUNS (4 runs)": ["report", str(runs / "startup_bench"), "--out", str(scratch / "report")],
        "lightning sweep --dry-run (60 runs, named before)": SWEEP,
        "lightning fit --help (trains: needs Lightning)": ["fit", "--help"],
    }
    candidates = {name: (lambda args=args: process_seconds(command(*args), env=env, cwd=ROOT))
                  for name, args in cases.items()}
    candidates["lightning sweep --dry-run (60 runs, first plan)"] = cold_sweep
    load_before = load_average()
    medians = interleaved_process_medians(candidates, REPEATS)
    load = f"{load_before} -> {load_average()}"
    rows = []
    for name, seconds in medians.items():
        args = cases.get(name, SWEEP)
        heavy = imported_heavy(args, env if name in cases else environment(tempfile.mkdtemp(dir=scratch)))
        rows.append({"command": name, "wall_s": round(seconds["wall"], 2), "cpu_s": round(seconds["cpu"], 2),
                     "imports": ", ".join(heavy) or "neither torch nor Lightning",
                     "target": "-" if "fit" in name else f"<= {TARGET_S} s", "load": load})
    shutil.rmtree(scratch)
    return rows
