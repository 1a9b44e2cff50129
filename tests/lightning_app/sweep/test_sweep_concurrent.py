"""Two sweeps of one file at once: a run the other sweep finished, or is training, is skipped, not
counted as failed (the sweep ends 0 when every run it launched finished). Checked once before a run is
started and again when its training exits refused (the other sweep may take the run in between)."""
import json

import pytest

from lightning_app.sweep.local import run_local
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.lightning_app.sweep.test_sweep_launchers import make_sweep
from tests.lightning_app.test_run_contract import _hold_lock_in_child

pytestmark = pytest.mark.usefixtures("run_from_repo_root")


@pytest.fixture
def held_by_another_process():
    """Lock run directories from a child process, as another sweep's training holds them."""
    import os
    import signal

    pids = []
    yield lambda run_dir: pids.append(_hold_lock_in_child(run_dir)) or pids[-1]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_runs_finished_or_held_by_another_sweep_are_skipped_not_failed(tmp_path, capsys, held_by_another_process):
    finished_elsewhere, held_elsewhere = runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n")))
    assert [run.action for run in runs] == ["start", "start"]  # planned before the other sweep got to them
    finished_elsewhere.run_dir.mkdir(parents=True)
    (finished_elsewhere.run_dir / "summary.json").write_text(json.dumps({"status": "completed"}))
    pid = held_by_another_process(held_elsewhere.run_dir)
    assert run_local(runs, 1, tmp_path / "logs") == 0
    captured = capsys.readouterr()
    assert "failed" not in captured.err
    assert f"skipped (completed by another process) {finished_elsewhere.run_dir}" in captured.out
    assert f"skipped (running elsewhere: pid {pid} on host " in captured.out
    assert "sweep: 0 runs finished here, 2 skipped (finished or running elsewhere)" in captured.out


def test_a_training_refused_because_another_process_took_the_run_is_skipped(tmp_path, held_by_another_process):
    from lightning_app.sweep.local import launch_outcome

    run, = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn]\n")))
    assert launch_outcome(run, 2) == ("failed", "failed")  # refused for no reason another sweep explains
    pid = held_by_another_process(run.run_dir)
    outcome, detail = launch_outcome(run, 2)
    assert outcome == "skipped" and detail.startswith(f"running elsewhere: pid {pid} on host ")
    assert launch_outcome(run, 1) == ("failed", "failed")  # a crash is a failure, whoever holds the run now
