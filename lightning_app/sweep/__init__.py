"""`lightning sweep`: a sweep file expanded into runs, planned from the run-directory contract
(`lightning_app/run/`), then run here, on a SLURM cluster or by a W&B agent.

    lightning sweep --config configs/sweeps/X.yaml [--dry-run] [--launcher local|slurm|wandb]
                    [--parallel N] [-- --trainer.max_epochs 1 ...]

One module per step, in the order a sweep takes them:
- `spec.py`: the sweep file, what it may say, and its expansion into grid points;
- `plan.py`: each point's run directory, computed by the CLI's own parser and naming code (without
  building a model), and its state: finished runs and runs another process holds are skipped;
- `planned_run.py`: one planned run (point, `fit` arguments, directory, state), shared by the launchers;
- `local.py` + `parent_death.py`: the local launcher, each run its own `fit` subprocess that cannot
  outlive the sweep;
- `export.py`: the SLURM job array and the W&B sweep file;
- `command.py`: the command line.
"""
