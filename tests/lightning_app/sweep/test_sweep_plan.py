"""The plan a sweep prints before it runs anything (`lightning sweep --dry-run` shows only this): each
run's action and state as the run directory has it, the counts, and what planning says of grid points
that name one run twice or of a bad base config."""
import os
import signal
import socket

import pytest

from lightning_app.run.lock import read_holder
from lightning_app.sweep.plan import plan_sweep, print_plan, sweep_dir
from lightning_app.sweep.spec import load_sweep
from tests.lightning_app.sweep.test_sweep_concurrent import held_by_another_process  # noqa: F401  (a fixture)
from tests.lightning_app.sweep.test_sweep_launchers import make_sweep
from tests.lightning_app.sweep.test_sweep_local import finish
from tests.lightning_app.test_run_contract import _hold_lock_in_child

pytestmark = pytest.mark.usefixtures("run_from_repo_root")


def checkpoint(run_dir) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")


def test_the_plan_shows_every_runs_action_and_state(tmp_path, capsys, held_by_another_process):  # noqa: F811
    """Finished, held by another process, killed (its summary says running, its holder on this host is
    gone), completed but untested (`fit` tests after training by default), new."""
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first, gn_plus_parallel, "
                                           "gn_plus_bn_first]\n  model.lr: [0.01]\n"))
    finished, held, killed, untested, new = (run.run_dir for run in plan_sweep(spec))
    finish(finished, test_acc=0.5)
    pid = held_by_another_process(held)
    finish(killed, "running")
    dead = _hold_lock_in_child(killed)
    os.kill(dead, signal.SIGKILL)
    os.waitpid(dead, 0)
    checkpoint(killed)
    finish(untested)
    checkpoint(untested)
    runs = plan_sweep(spec)
    capsys.readouterr()
    print_plan(spec, runs)
    started = read_holder(held)["started"]
    assert capsys.readouterr().out.splitlines() == [
        f"sweep tiny: 5 runs in {tmp_path / 'runs' / 'tiny'} (1 finished, 1 running elsewhere, 2 to resume, "
        "1 to start)",
        f"    0  skip   {finished.name} [completed]  model.norm=bn model.lr=0.01",
        f"    1  skip   {held.name} [running elsewhere: pid {pid} on host {socket.gethostname()}, started {started}]  "
        "model.norm=gn model.lr=0.01",
        f"    2  resume {killed.name} [killed]  model.norm=gn_plus_gn_first model.lr=0.01",
        f"    3  resume {untested.name} [untested]  model.norm=gn_plus_parallel model.lr=0.01",
        f"    4  start  {new.name}  model.norm=gn_plus_bn_first model.lr=0.01",
    ]


def test_a_plan_of_one_run_and_of_none(tmp_path, capsys):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [gn]\n"))
    (run,) = plan_sweep(spec)
    assert sweep_dir([run]) == tmp_path / "runs" / "tiny" / "_sweep"
    print_plan(spec, [run])
    print_plan(spec, [])
    assert capsys.readouterr().out.splitlines() == [
        f"sweep tiny: 1 runs in {tmp_path / 'runs' / 'tiny'} (0 finished, 0 to resume, 1 to start)",
        f"    0  start  {run.run_dir.name}  model.norm=gn",
        "sweep tiny: 0 runs in - (0 finished, 0 to resume, 0 to start)"]


def test_grid_points_naming_a_planned_run_are_counted_and_planning_goes_on(tmp_path, capsys):
    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, bn, gn, bn]\n")))
    assert [run.point["model.norm"] for run in runs] == ["bn", "gn"]
    assert capsys.readouterr().err.splitlines() == [
        "normlab: 2 grid point(s) name a run directory already planned (they differ only in values that do not "
        "change the run); each directory is run once"]


def test_a_sweep_without_a_grid_names_the_base_config_in_its_error(tmp_path):
    sweep = tmp_path / "no_grid.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\n"
                     f"args: {{trainer.default_root_dir: {tmp_path / 'runs'}, model.optimizer: rmsprop}}\n")
    with pytest.raises(ValueError) as info:
        plan_sweep(load_sweep(sweep))
    assert str(info.value).startswith("sweep run (the base config): ")
    assert str(info.value).endswith("model.optimizer: got 'rmsprop', expected one of 'sgd', 'adam', 'adamw'")
