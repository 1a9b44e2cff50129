"""`lightning sweep`'s command line: parse, plan, print the plan, then launch (see the package header).

Parsed by jsonargparse, like `lightning fit`, so a bad option is the same one line (`bad_input.py`).
Everything after `--` is not parsed here: it is appended to every run's `fit` arguments.
"""
from __future__ import annotations

import os
import sys
from typing import Literal

from jsonargparse import ArgumentParser, Namespace

from lightning_app.bad_input import one_line, parse_command_line
from lightning_app.sweep.local import run_local
from lightning_app.sweep.plan import plan_sweep, print_plan, sweep_dir
from lightning_app.sweep.spec import load_sweep


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lightning sweep", description="Expand a sweep file into runs and run those not finished.",
        epilog="Arguments after `--` are appended to every run, e.g. `-- --trainer.max_epochs 1`.",
        exit_on_error=False)
    parser.add_argument("--config", type=str, required=True, help="the sweep file (configs/sweeps/*.yaml)")
    parser.add_argument("--launcher", type=Literal["local", "slurm", "wandb"], default="local",
                        help="local: run here; slurm: a job array (submitted when sbatch exists); wandb: a W&B "
                             "sweep file")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--parallel", type=int, default=1,
                        help="local launcher: runs at once, each pinned to its own visible GPU when there are "
                             "GPUs; without GPUs they share the CPU")
    return parser


def main(argv: list[str]) -> None:
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    try:
        options = parse_command_line(build_parser(), argv[:argv.index("--")] if "--" in argv else argv)
        sys.exit(_sweep(options, extra))
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        print(f"normlab: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)


def _sweep(options: Namespace, extra: list[str]) -> int:
    if options.parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {options.parallel}")
    spec = load_sweep(options.config)
    runs = plan_sweep(spec, extra)
    print_plan(spec, runs)
    if options.dry_run:
        return 0
    if options.launcher == "slurm":
        from lightning_app.sweep.export import submit_slurm

        return submit_slurm(spec, runs, sweep_dir(runs))
    if options.launcher == "wandb":
        from lightning_app.sweep.export import write_wandb_sweep

        write_wandb_sweep(spec, runs, sweep_dir(runs), extra)
        return 0
    return run_local(runs, options.parallel, sweep_dir(runs) / "logs")
