"""`lightning`: the command's entry point; it imports only what the subcommand needs.

    lightning fit --config configs/quickstart.yaml [--config configs/presets/X.yaml] [--model.norm gn]
    lightning sweep --config configs/sweeps/X.yaml [--launcher local|slurm|wandb] [--dry-run]
    lightning report RUNS_DIR [--out DIR]

`lightning --help`, `lightning sweep` and `lightning report` never import torch or Lightning, which
take seconds on a small machine (bench/startup.py); fit, validate, test and predict load the CLI
(cli.py). Bad input, whatever the subcommand, is one line `normlab: error: ...` on stderr and exit code
2 (`NORMLAB_DEBUG=1` shows the traceback).
"""
from __future__ import annotations

import os
import sys

from lightning_app.bad_input import CORRUPT_FILE_ERRORS, bad_input_errors, corrupt_file_message, explain_parse_error
from lightning_app.quiet import quiet_unactionable_output
from lightning_app.run.interrupt import recording

COMMANDS_HELP = """usage: lightning {fit,validate,test,predict,sweep,report} ...

normlab: image classifiers with swappable normalization layers, one directory per run.

commands (`lightning COMMAND --help` shows each one's options):
  fit        train a run into its own directory (an interrupted one resumes), then test it
  validate   evaluate a model or checkpoint on the validation split
  test       evaluate a model or checkpoint on the test split
  predict    predict with a model or checkpoint
  sweep      expand a sweep file into runs; run the unfinished ones here, on SLURM or as a W&B sweep
  report     tables and figures from a folder of finished runs
"""


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    quiet_unactionable_output()
    if argv[:1] in (["-h"], ["--help"]):
        print(COMMANDS_HELP, end="")
        return
    try:
        if argv[:1] == ["sweep"]:
            from lightning_app.sweep.command import main as sweep

            sweep(argv[1:])
        elif argv[:1] == ["report"]:
            from lightning_app.report.command import main as report

            report(argv[1:])
        else:
            from lightning_app.cli import run_cli  # torch and Lightning: only the training subcommands need them

            with recording():
                run_cli(argv if args is not None else None)
    except bad_input_errors() as error:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        # one line, whatever the raiser (jsonargparse, a file reader) formatted
        corrupt = isinstance(error, CORRUPT_FILE_ERRORS)
        message = corrupt_file_message(error) if corrupt else explain_parse_error(str(error))
        print(f"normlab: error: {message}", file=sys.stderr)
        sys.exit(2)
    except run_failures() as error:  # the run failed (a full disk, ...); nothing was wrong with the input
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        from lightning_app.run.failure import EXIT_CODE, RunFailed, describe_os_error

        print(f"normlab: error: {str(error) if isinstance(error, RunFailed) else describe_os_error(error)}",
              file=sys.stderr)
        sys.exit(EXIT_CODE)


def run_failures() -> tuple[type[BaseException], ...]:
    """An OSError, and the training's RunFailed (an OSError with what the run directory holds) where the
    module that raises it was loaded: importing it here would load the callbacks for every command."""
    failure = sys.modules.get("lightning_app.run.failure")
    return (OSError,) if failure is None else (OSError, failure.RunFailed)
