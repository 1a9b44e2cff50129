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
touches the network; `wandb sync <run dir>/wandb/offline-run-*` uploads later. Online, the login is
verified with the server (in a child process, killed after 30 s at most) before the run directory is
made, and refused in one line saying what to do; the W&B names (project, entity, group, tags) hold no
control character.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import WandbLogger

from lightning_app.run.identity import BATCH_SIZE_KEY, data_name, derive_run_name, get_dotted, model_args
from lightning_app.run.paths import check_printable

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFLINE_MODES = ("offline", "dryrun", "disabled")  # WANDB_MODE values that never reach the server
LOGIN_TIMEOUT_SECONDS = 5  # each HTTP request of the login check
LOGIN_DEADLINE_SECONDS = 30  # the whole check: a process start, importing wandb, wandb-core's start, the request
# by path, with -P (no script folder on sys.path): the probe needs only the standard library and wandb
LOGIN_PROBE = (sys.executable, "-P", str(Path(__file__).with_name("wandb_login_probe.py")))


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


def check_usable(options: WandbOptions) -> None:
    """Names W&B can show, and a login the server accepts unless offline: checked by the CLI before it builds
    anything, so that a run that cannot log where it was asked to is one line, and no run directory."""
    check_names(options)
    check_login(options)


def check_names(options: WandbOptions) -> None:
    """The names W&B shows (and a sweep file repeats) hold no control character."""
    for key in ("project", "entity", "group"):
        if getattr(options, key) is not None:
            check_printable(f"wandb.{key}", getattr(options, key))
    for tag in options.tags:
        check_printable("wandb.tags", tag)


def is_offline(options: WandbOptions) -> bool:
    return options.offline or os.environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES


def check_login(options: WandbOptions) -> None:
    """Online logging needs a W&B login that the server accepts. Checked before the run directory is made, in
    a child process under a deadline (see `wandb_login_probe`): without the check, wandb.init would fail only
    after a minute or two of retries (or, with no key and no terminal, with a long traceback), leaving a run
    directory that holds nothing but `wandb/`."""
    if is_offline(options):
        return
    todo = ("run 'wandb login', or set WANDB_MODE=offline (or --wandb.offline true) to log offline and upload "
            "later with 'wandb sync'")
    result = probe_login()
    if result is None:
        raise ValueError(f"W&B logging is on but the W&B server did not answer the login check within "
                         f"{LOGIN_DEADLINE_SECONDS} s; {todo}")
    if result.get("missing"):
        raise ValueError(f"W&B logging is on but no W&B login is configured; {todo}")
    if not result.get("verified"):
        raise ValueError(f"W&B logging is on but the login could not be verified ({result.get('error')}); {todo}")


def probe_login() -> dict | None:
    """The outcome `wandb_login_probe` wrote, or None when it did not finish within LOGIN_DEADLINE_SECONDS (it
    and its process group are killed then). The probe reports nothing to W&B's error service: a login check
    that fails is an answer, not a crash to upload."""
    with tempfile.TemporaryDirectory(prefix="normlab-wandb-login-") as folder:
        result = Path(folder, "outcome.json")
        child = subprocess.Popen([*LOGIN_PROBE, str(result), str(LOGIN_TIMEOUT_SECONDS)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "WANDB_ERROR_REPORTING": "false"})
        try:
            child.wait(timeout=LOGIN_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            return None
        finally:  # also on Ctrl-C: the probe lives in its own session, so the terminal's SIGINT misses it
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        try:
            return json.loads(result.read_text())
        except (OSError, ValueError):
            return {"verified": False, "error": f"the login check exited with status {child.returncode}"}


def make_wandb_logger(options: WandbOptions | None, config: dict, experiment: str, run_name: str,
                      run_dir: Path) -> WandbLogger | None:
    """The WandbLogger of this run (`check_usable` passed), or None when the `wandb` key is unset. W&B writes
    into <run dir>/wandb/ once training starts (the run directory exists then: its lock is taken before)."""
    if options is None:
        return None
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
