"""A run started the way a W&B sweep agent starts it: the `command` of the sweep file that
`lightning sweep --launcher wandb` writes, with W&B's `${args}` rendering and the agent's environment
(WANDB_SWEEP_ID, WANDB_RUN_ID, WANDB_PROJECT), offline. The run must log to the agent's run (its id
and project: otherwise it never reports to the sweep) and log the sweep's metric. The same run's
stderr is also checked for the output Lightning and torch print on every run that nobody can act on
(`lightning_app/quiet.py`)."""
import subprocess
import sys

import pytest
import yaml

from lightning_app.sweep.export import write_wandb_sweep
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.fakedata import write_fake_mnist
from tests.helpers import ROOT
from tests.lightning_app.sweep.test_sweep_end_to_end import tiny_sweep
from tests.lightning_app.test_wandb_offline import items, wait_for_exit_record

AGENT = {"WANDB_SWEEP_ID": "sweep0001", "WANDB_RUN_ID": "agentrun42", "WANDB_PROJECT": "normlab-agent-test"}


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory):
    """The sweep's second run, started as the agent would; returns (planned run, sweep file, process)."""
    tmp_path = tmp_path_factory.mktemp("agent")
    write_fake_mnist(tmp_path / "data")
    spec = load_sweep(tiny_sweep(tmp_path, tmp_path / "data", "  model.norm: [bn, gn]\n"))
    runs = plan_sweep(spec)
    sweep_file = yaml.safe_load(write_wandb_sweep(spec, runs, tmp_path / "_sweep", []).read_text())
    run = runs[1]
    command = sweep_file["command"]
    assert command[:2] == ["${env}", "${interpreter}"] and command[-1] == "${args}"
    rendered_args = [f"--{key}={value}" for key, value in run.point.items()]  # W&B's ${args}
    env = {name: value for name, value in __import__("os").environ.items() if not name.startswith("WANDB_")}
    env.update(AGENT, WANDB_MODE="offline", OMP_NUM_THREADS="1")
    process = subprocess.run([sys.executable, *command[2:-1], *rendered_args], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    return run, sweep_file, process


def test_an_agent_run_logs_to_the_agents_run_and_reports_the_sweep_metric(agent_run):
    run, sweep_file, _ = agent_run
    (folder,) = run.run_dir.glob("wandb/offline-run-*")  # the run directory the sweep planned
    assert folder.name.endswith("-" + AGENT["WANDB_RUN_ID"])
    records = wait_for_exit_record(next(folder.glob("run-*.wandb")))
    wandb_run = next(r.run for r in records if r.HasField("run"))
    assert wandb_run.run_id == AGENT["WANDB_RUN_ID"] and wandb_run.project == AGENT["WANDB_PROJECT"]
    assert wandb_run.sweep_id == AGENT["WANDB_SWEEP_ID"]
    metric = sweep_file["metric"]["name"]
    logged = [items(r.history.item) for r in records if r.HasField("history")]
    assert any(metric in row for row in logged), f"the sweep's metric {metric} was never logged"


def test_a_run_prints_nothing_the_user_cannot_act_on(agent_run):
    stderr = agent_run[2].stderr
    assert "normlab: completed" in agent_run[2].stdout  # the run did run
    for noise in ("litlogger", "LeafSpec", "The `srun` command is available"):
        assert noise not in stderr, noise


def test_help_lists_every_command(capsys):
    from lightning_app.command import main

    main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    for command in ("fit", "validate", "test", "predict", "sweep", "report"):
        assert sum(line.split()[:1] == [command] for line in lines) == 1, command
