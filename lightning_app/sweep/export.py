"""`lightning sweep --launcher slurm|wandb`: the sweep as a SLURM job array or a W&B sweep file.

SLURM (`slurm:` section of the sweep file; every key optional):
    gpus: 1            GPUs per run (--gres=gpu:N); 0: a CPU run
    cpus_per_task: 8   mem: 32G   time: "24:00:00"   partition: gpu   max_parallel: 10 (%limit)
    python: python     the interpreter on the compute nodes (default: the one running the sweep)
    setup: [...]       shell lines before srun (module load, source .venv/bin/activate, ...)
    sbatch: [...]      further #SBATCH options, verbatim (e.g. "--account=abc")
What is not set comes from the cluster (`sinfo`: CPUs and GPU GRES per node of the partition) and the
run's config (trainer.accelerator, trainer.devices): GPUs only for runs that can use them on a cluster
that has them (a GPU run on a cluster without GPUs is refused), one task per device (Lightning's DDP
under SLURM wants `--ntasks-per-node` = devices, on CPU too), and each task its share of a node's
CPUs (per GPU for GPU runs); OMP_NUM_THREADS follows the CPUs given. Without `sinfo` (the script is
printed for another machine) a run that may use GPUs gets one per device, and 8 CPUs per task.
One array task per unfinished run; `--signal=SIGUSR1@90` lets Lightning's SLURM plugin checkpoint and
requeue a task 90 s before its time limit; each task logs to `_sweep/slurm/<job>_<task>.log`, and
`_sweep/slurm/tasks.tsv` maps task ids to run directories. The script is submitted when `sbatch`
exists, printed otherwise.

W&B (`wandb:` section): project, entity, name, method (grid), metric ({name: val/acc, goal:
maximize}). The command is `python -m lightning_app fit --config configs/presets/wandb.yaml
--config <base>... <fixed args> ${args}`: W&B logging on (the run takes the agent's run id, project
and entity: `wandb_logger.py`), and LightningCLI parses the swept values after the configs. A single grid of single keys whose values
W&B's `--key=value` rendering keeps intact becomes one W&B parameter per key; any other sweep (keys
varied together, a union of grids, values such as null or 1e-05) becomes one parameter `config`
whose values are per-run override files, applied after the base configs.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from callbacks.run_files import atomic_write_text
from lightning_app.run.paths import CONTROL_CATEGORIES, check_printable
from lightning_app.sweep.planned_run import PlannedRun
from lightning_app.sweep.spec import SweepSpec

SLURM_KEYS = ("gpus", "cpus_per_task", "mem", "time", "partition", "max_parallel", "python", "setup", "sbatch")
WANDB_KEYS = ("project", "entity", "name", "method", "metric")
WANDB_PRESET = "configs/presets/wandb.yaml"  # first, so the base configs may still set wandb keys


@dataclass(frozen=True)
class ClusterNodes:
    """What `sinfo` says about the nodes of a partition: the smallest CPU count, the largest GPU count."""

    cpus: int
    gpus: int


@dataclass(frozen=True)
class JobShape:
    """The resources of one array task: GPUs and tasks on its node, CPUs per task."""

    gpus: int
    tasks: int
    cpus_per_task: int


def query_cluster(partition: str | None = None) -> ClusterNodes | None:
    """The partition's nodes from `sinfo` (CPUs per node, GPU GRES per node); None without `sinfo`."""
    if shutil.which("sinfo") is None:
        return None
    command = ["sinfo", "--noheader", "--format=%c|%G", *([f"--partition={partition}"] if partition else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    rows = [line.split("|", 1) for line in result.stdout.splitlines() if "|" in line]
    if result.returncode != 0 or not rows:
        raise ValueError(f"`{' '.join(command)}` gave no nodes (exit {result.returncode}): "
                         f"{(result.stderr or result.stdout).strip() or 'empty output'}")
    return ClusterNodes(cpus=min(_leading_int(cpus) for cpus, _ in rows),
                        gpus=max(_gpu_count(gres) for _, gres in rows))


def _leading_int(text: str) -> int:
    digits = re.match(r"\s*(\d+)", text)
    return int(digits.group(1)) if digits else 1


def _gpu_count(gres: str) -> int:
    """GPUs in a GRES string: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:2`, `(null)`."""
    total = 0
    for entry in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = entry.strip().split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def device_count(devices: Any) -> int | None:
    """trainer.devices as a count; None for 'auto' or -1 (as many as there are)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        devices = int(text) if text.lstrip("-").isdigit() else None
    return devices if isinstance(devices, int) and devices > 0 else None


def job_shape(accelerator: str, devices: Any, settings: dict[str, Any], cluster: ClusterNodes | None) -> JobShape:
    """GPUs, tasks and CPUs per task of a run: the sweep file's `slurm:` values, else what the run's
    accelerator and devices need on this cluster."""
    count = device_count(devices)
    wants_gpu = accelerator in ("gpu", "cuda")
    if settings.get("gpus") is not None:
        gpus = int(settings["gpus"])
    elif accelerator not in ("auto", "gpu", "cuda"):
        gpus = 0  # cpu (or another accelerator SLURM does not hand out as GRES)
    elif cluster is not None and cluster.gpus == 0:
        if wants_gpu:
            raise ValueError(f"the runs ask for trainer.accelerator={accelerator} but the SLURM cluster has no GPUs "
                             "(sinfo shows no gpu GRES); use trainer.accelerator auto or cpu, or set slurm.partition "
                             "to a GPU partition")
        gpus = 0
    else:
        gpus = count or 1
        if cluster is not None and gpus > cluster.gpus:
            raise ValueError(f"the runs need {gpus} GPUs on one node (trainer.devices={devices}) but the cluster's "
                             f"nodes have at most {cluster.gpus}; lower trainer.devices")
    tasks = gpus if gpus > 0 else (count or 1)
    if settings.get("cpus_per_task") is not None:
        cpus = int(settings["cpus_per_task"])
    elif cluster is None:
        cpus = 8
    else:
        cpus = cluster.cpus // (cluster.gpus if gpus > 0 else tasks)
    return JobShape(gpus=gpus, tasks=tasks, cpus_per_task=max(cpus, 1))


def slurm_script(spec: SweepSpec, runs: list[PlannedRun], log_dir: Path, cluster: ClusterNodes | None) -> str:
    """The sbatch job-array script for the unfinished `runs` (task i runs the i-th of them)."""
    settings = _settings(spec.slurm, SLURM_KEYS, "slurm")
    todo = [run for run in runs if run.action != "skip"]
    shapes = {job_shape(run.accelerator, run.devices, settings, cluster) for run in todo}
    if len(shapes) > 1:
        raise ValueError(f"the runs of one job array need different resources ({sorted(shapes, key=str)}); "
                         "split the sweep so that trainer.accelerator and trainer.devices are the same in each")
    (shape,) = shapes
    array = f"0-{len(todo) - 1}" + (f"%{settings['max_parallel']}" if settings.get("max_parallel") else "")
    directives = [f"--job-name=normlab-{spec.experiment}", f"--array={array}", "--nodes=1",
                  f"--ntasks-per-node={shape.tasks}"]
    directives += [f"--gres=gpu:{shape.gpus}"] if shape.gpus > 0 else []
    directives += [f"--cpus-per-task={shape.cpus_per_task}", f"--time={settings.get('time', '24:00:00')}"]
    directives += [f"--mem={settings['mem']}"] if settings.get("mem") else []
    directives += [f"--partition={settings['partition']}"] if settings.get("partition") else []
    directives += [f"--output={log_dir}/%A_%a.log", "--open-mode=append", "--signal=SIGUSR1@90", "--requeue",
                   f"--chdir={Path.cwd()}"]
    python = settings.get("python", sys.executable)
    lines = ["#!/bin/bash",
             f"# normlab sweep {comment(repr(spec.experiment))} ({comment(spec.path)}): one array task per unfinished run.",
             "# Written by `lightning sweep --launcher slurm`; run that command again to resubmit what is",
             "# not finished (interrupted runs resume from their last checkpoint)."]
    # sbatch reads a #SBATCH line's words as a shell would (quotes group, an unquoted # starts a comment)
    lines += [f"#SBATCH {shlex.quote(d)}" for d in directives]
    lines += [f"#SBATCH {option}" for option in settings.get("sbatch", [])]  # verbatim, as the sweep file says
    lines += ["set -euo pipefail", "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}  # torch: the cores given, not all",
              *[str(line) for line in settings.get("setup", [])], 'case "$SLURM_ARRAY_TASK_ID" in']
    for task, run in enumerate(todo):
        lines.append(f"  {task}) ARGS=({' '.join(shlex.quote(a) for a in ['fit', *run.args])}) ;;  # {comment(run.run_dir)}")
    lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac",
              # --kill-on-bad-exit: a rank that stops with an error (rank 0 refusing a taken run, a crash)
              # ends the others, which would wait for it in the process group until its 30 min timeout
              f'srun --kill-on-bad-exit=1 {shlex.quote(python)} -m lightning_app "${{ARGS[@]}}"', ""]
    return "\n".join(lines)


def queued_arrays(script_path: Path) -> list[str]:
    """The job arrays SLURM still holds (pending, running, requeued) that were submitted from this sweep's
    script, found by the script's absolute path, which squeue reports as the command; [] without squeue."""
    if shutil.which("squeue") is None:
        return []
    listed = subprocess.run(["squeue", "--noheader", "--format=%F|%o"], capture_output=True, text=True)
    script = script_path.resolve()  # both sides resolved: the runs root may be reached through a symlink
    return sorted({job for job, _, command in (line.partition("|") for line in listed.stdout.splitlines())
                   if command.startswith("/") and Path(command).resolve() == script}, key=int)


def submit_slurm(spec: SweepSpec, runs: list[PlannedRun], sweep_dir: Path) -> int:
    todo = [run for run in runs if run.action != "skip"]
    if not todo:
        elsewhere = sum(run.holder is not None for run in runs)
        print("sweep: every run is finished" + (f" or running elsewhere ({elsewhere})" if elsewhere else "")
              + "; nothing to submit")
        return 0
    log_dir = sweep_dir / "slurm"
    script_path = log_dir / "sweep.sbatch"
    if queued := queued_arrays(script_path):
        raise ValueError(f"job array {', '.join(queued)} of this sweep ({script_path}) is still queued or running; "
                         "submitting again would start its runs a second time. Wait for it to end (squeue), or "
                         f"cancel it first: scancel {' '.join(queued)}")
    cluster = query_cluster(_settings(spec.slurm, SLURM_KEYS, "slurm").get("partition"))
    script = slurm_script(spec, runs, log_dir, cluster)  # checked before anything is written
    atomic_write_text(script_path, script)
    atomic_write_text(log_dir / "tasks.tsv", "".join(f"{task}\t{run.run_dir}\n" for task, run in enumerate(todo)))
    if shutil.which("sbatch") is None:
        print(f"sweep: sbatch not found; the job-array script is {script_path} (submit it with: sbatch "
              f"{script_path}):\n")
        print(script_path.read_text())
        return 0
    result = subprocess.run(["sbatch", str(script_path)], capture_output=True, text=True)
    print((result.stdout + result.stderr).strip())
    if result.returncode != 0:
        raise ValueError(f"sbatch {script_path} failed with exit code {result.returncode}")
    print(f"sweep: submitted {len(todo)} array tasks; logs in {log_dir}, task -> run in {log_dir / 'tasks.tsv'}")
    return 0


def wandb_sweep(spec: SweepSpec, runs: list[PlannedRun], sweep_dir: Path, extra: list[str]) -> dict[str, Any]:
    """The W&B sweep configuration (a dict for `wandb sweep FILE`) covering every run of the sweep."""
    settings = _settings(spec.wandb, WANDB_KEYS, "wandb")
    fixed = spec.run_args({}, extra)  # configs, experiment, fixed args, extra: the same for every run
    per_key = spec.is_cartesian() and all(_survives_wandb(v) for run in runs for v in run.point.values())
    if per_key:
        parameters: dict[str, Any] = {}
        for run in runs:
            for key, value in run.point.items():
                values = parameters.setdefault(key, {"values": []})["values"]
                if value not in values:
                    values.append(value)
    else:
        override_dir = sweep_dir / "wandb_runs"
        files = []
        for run in runs:
            path = override_dir / f"{run.run_dir.name}.yaml"
            atomic_write_text(path, yaml.safe_dump(_nested(run.point), sort_keys=False))
            files.append(str(path))
        parameters = {"config": {"values": files}}
    config = {"program": "lightning_app/__main__.py", "method": settings.get("method", "grid"),
              "metric": settings.get("metric", {"name": "val/acc", "goal": "maximize"}),
              "parameters": parameters,
              "command": ["${env}", "${interpreter}", "-m", "lightning_app", "fit", "--config", WANDB_PRESET, *fixed,
                          "${args}"]}
    for key in ("project", "entity", "name"):
        if settings.get(key):
            config[key] = settings[key]
    config.setdefault("name", spec.experiment)
    return config


def write_wandb_sweep(spec: SweepSpec, runs: list[PlannedRun], sweep_dir: Path, extra: list[str]) -> Path:
    path = sweep_dir / "wandb_sweep.yaml"
    atomic_write_text(path, f"# W&B sweep for normlab sweep {comment(repr(spec.experiment))} ({comment(spec.path)}), "
                            "written by `lightning sweep --launcher wandb`.\n"
                      + yaml.safe_dump(wandb_sweep(spec, runs, sweep_dir, extra), sort_keys=False))
    print(f"sweep: wrote {path}\n  create the sweep: wandb sweep {path}\n  then on each machine: wandb agent "
          "<entity>/<project>/<sweep id>   (runs W&B already finished are refused by the CLI: a completed "
          "run directory is never overwritten)")
    return path


def _survives_wandb(value: Any) -> bool:
    """W&B renders a parameter as `--key={value}` with Python's str(): None, 1e-05 or a dict would not
    read back as themselves (PyYAML, as the CLI reads values, gives 'None', '1e-05', ...)."""
    if not isinstance(value, (str, int, float)):
        return False
    try:
        return yaml.safe_load(str(value)) == value
    except yaml.YAMLError:  # a name such as `x` (backquotes) is no YAML scalar at all
        return False


def _nested(point: dict[str, Any]) -> dict[str, Any]:
    """`{"model.norm": "bn"}` -> `{"model": {"norm": "bn"}}`: a config file the CLI merges."""
    nested: dict[str, Any] = {}
    for key, value in point.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def comment(text: Any) -> str:
    """`text` for a `#` comment line: every control character escaped, so that nothing can end the line."""
    return "".join(c if unicodedata.category(c) not in CONTROL_CATEGORIES else c.encode("unicode_escape").decode()
                   for c in str(text))


def _settings(section: dict[str, Any], allowed: tuple[str, ...], name: str) -> dict[str, Any]:
    """The section's settings; each value one line (a #SBATCH option or a setup line with a newline would be
    two lines of the script, the second a command no one wrote as such)."""
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ValueError(f"sweep '{name}' section: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
    for key, value in section.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                check_printable(f"sweep '{name}' section: {key}", item)
    return section

