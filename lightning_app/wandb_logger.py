"""W&B logging beside the CSV logger, switched on by the top-level `wandb` key
(`--config configs/presets/wandb.yaml`, or `--wandb.project NAME`; `--wandb null` switches it off).

Everything that names the W&B run derives from the config, so dashboards group and filter by the
axes of the study:
- project: `wandb.project`, default `normlab-<dataset>`;
- group: the run name with the seed replaced by `s*` (every seed of one configuration in one group,
  which W&B draws as mean and band); name: the run name;
- tags: dataset, backbone, norm, `bs<N>`, `lr<X>`, `seed<N>`, the experiment, plus `wandb.tags`;
- id: a hash of `<experiment>/<run_name>`, the run directory's identity. A resumed or requeued run
  relaunches the same config, so it gets the same id and continues the same W&B run (resume="allow").
  `SLURM_JOB_ID` is recorded in the run config but is not the id: a manual resubmission changes it,
  and one job may run several runs one after another;
- under a W&B sweep agent (`WANDB_SWEEP_ID` set), the id, project and entity are the agent's
  (`WANDB_RUN_ID`, `WANDB_PROJECT`, `WANDB_ENTITY`): a run under another id would not report to the sweep;
- the W&B run config holds the fully resolved config, the git commit (and whether the tree was dirty),
  the run directory and the SLURM job id. Checkpoints are uploaded only with `wandb.log_model`.
The W&B files live in `<run dir>/wandb/`. With `WANDB_MODE=offline` (or `wandb.offline: true`) nothing
touches the network; `wandb sync <run dir>/wandb/offline-run-*` uploads later.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import WandbLogger

from lightning_app.run.identity import BATCH_SIZE_KEY, data_name, derive_run_name, get_dotted, model_args

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WandbOptions:
    """Weights & Biases logging (beside the CSV logger)."""

    project: str | None = None  # default: normlab-<dataset>
    entity: str | None = None  # default: your W&B default entity
    group: str | None = None  # default: the run name with the seed replaced by s*
    tags: list[str] = field(default_factory=list)  # added to the derived tags
    log_model: bool | Literal["all"] = False  # upload checkpoints: false, true (at the end) or all
    offline: bool = False  # write the W&B files only; `wandb sync` uploads them later


def git_state(repo: Path = REPO_ROOT) -> dict:
    """The commit of the code that ran, and whether tracked files differed from it."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def run_identity(config: dict, experiment: str, run_name: str, options: WandbOptions) -> dict:
    """wandb.init's project, group, name, id and tags for a resolved (dumped) subcommand config."""
    model = model_args(config)
    dataset = data_name(config.get("data"))
    derived_tags = [dataset, model.get("backbone"), model.get("norm"), f"bs{get_dotted(config, BATCH_SIZE_KEY)}",
                    f"lr{model.get('lr'):g}" if isinstance(model.get("lr"), (int, float)) else None,
                    f"seed{config.get('seed_everything')}", experiment]
    tags = list(dict.fromkeys(str(t)[:64] for t in [*derived_tags, *options.tags] if t))  # W&B: ≤ 64 chars
    return {
        "project": options.project or f"normlab-{dataset}",
        "group": options.group or derive_run_name({**config, "seed_everything": "*"}),
        "name": run_name,
        "id": hashlib.sha1(f"{experiment}/{run_name}".encode()).hexdigest()[:16],
        "tags": tags,
    }


def agent_identity() -> dict:
    """The id, project and entity a W&B sweep agent gave this run (its environment); empty outside one."""
    if not os.environ.get("WANDB_SWEEP_ID"):
        return {}
    given = {"id": "WANDB_RUN_ID", "project": "WANDB_PROJECT", "entity": "WANDB_ENTITY"}
    return {key: os.environ[name] for key, name in given.items() if os.environ.get(name)}


def make_wandb_logger(options: WandbOptions | None, config: dict, experiment: str, run_name: str,
                      run_dir: Path) -> WandbLogger | None:
    """The WandbLogger of this run, or None when the `wandb` key is unset."""
    if options is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)  # W&B writes <run dir>/wandb/
    identity = {"entity": options.entity, **run_identity(config, experiment, run_name, options), **agent_identity()}
    run_config = {**config, "git": git_state(), "run_dir": str(run_dir),
                  "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    extra = {"mode": "offline"} if options.offline else {}
    return WandbLogger(save_dir=str(run_dir), log_model=options.log_model,
                       config=run_config, resume="allow", **identity, **extra)


def finish_wandb(trainer: Trainer, summary: dict | None) -> None:
    """Copy the run's outcome into the W&B summary and close the W&B run (a later fit in the same
    process would otherwise reuse it)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            if summary is not None:
                logger.experiment.summary.update({f"run/{key}": summary.get(key) for key in (
                    "status", "best_val_acc", "final_val_acc", "test_acc", "epochs", "wall_seconds")})
            # an exploded run finished as the study defines it; only a crashed or interrupted one failed
            logger.experiment.finish(exit_code=1 if (summary or {}).get("status") == "failed" else 0)
