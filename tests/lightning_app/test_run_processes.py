"""One writer per run and clean interruptions, with real `lightning fit` processes (slow tier: each
process start costs ~5 s of imports, more on a loaded machine).

One long run (fake MNIST, many epochs) goes through what a shared cluster does to it: a second fit of
the same run while it trains (refused, naming the holder), kill -9 (the relaunch takes the lock and
resumes), SIGTERM (exit 143, status interrupted), SIGINT (exit 130, status interrupted). Every step
is checked against the run's metrics.csv: never two rows of one step from two writers."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lightning_app.run.lock import holder_of
from tests.helpers import ROOT, tiny_args

pytestmark = pytest.mark.slow


def start(args):
    env = {**os.environ, "WANDB_MODE": "offline", "NORMLAB_DEBUG": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "lightning_app", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def normlab_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("normlab:")]


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def steps_written_twice(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [(row["step"], tuple(k for k, v in row.items() if v and k != "epoch")) for row in csv.DictReader(f)]
    return len(rows) - len(set(rows))


def test_one_writer_kill_9_sigterm_and_sigint(fake_mnist_dir, tmp_path):
    root = tmp_path / "runs"
    args = tiny_args(fake_mnist_dir, root, "--run_name", "long", "--trainer.max_epochs", "100000",
                     "--checkpoint_every_n_steps", "2")
    run_dir = root / "quickstart" / "long"
    first = start(args)
    wait_for(lambda: (holder_of(run_dir) or {}).get("pid") == first.pid and (run_dir / "metrics.csv").is_file(), first)

    second = start(args)  # the same run while the first trains
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2
    errors = [line for line in normlab_lines(err) if line.startswith("normlab: error:")]  # besides the data-source note
    assert errors == [f"normlab: error: {run_dir} is in use by another training (pid {first.pid} on host "
                                  f"{os.uname().nodename}, started {holder_of(run_dir)['started']}); wait for it to end "
                                  "or stop it (a stopped process releases the run at once), or set --run_name / "
                                  "--experiment to write elsewhere"], err[-3000:]

    wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file(), first)
    first.kill()  # SIGKILL: no handler runs, the kernel drops the lock
    first.wait()
    killed_at = summary(run_dir)
    assert killed_at["status"] == "running"

    third = start(args)
    wait_for(lambda: (holder_of(run_dir) or {}).get("pid") == third.pid
             and summary(run_dir)["steps"] > killed_at["steps"], third)  # training again
    third.send_signal(signal.SIGTERM)  # what `timeout`, `kill` and a scheduler send
    _, err = third.communicate(timeout=300)
    assert third.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "normlab: resuming the interrupted run in" in err
    assert normlab_lines(err)[-1] == (f"normlab: interrupted by SIGTERM | run dir: {run_dir} | status: interrupted; "
                                      "relaunch the same command to resume")
    assert "Traceback" not in err, err[-3000:]
    assert summary(run_dir)["status"] == "interrupted"
    steps = summary(run_dir)["steps"]

    fourth = start(args)  # interrupted is resumable
    wait_for(lambda: summary(run_dir)["steps"] > steps and summary(run_dir)["status"] == "running", fourth)
    fourth.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = fourth.communicate(timeout=300)
    assert fourth.returncode == 128 + signal.SIGINT, err[-3000:]
    assert normlab_lines(err)[-1].startswith("normlab: interrupted by SIGINT | run dir: ")
    assert "Traceback" not in err, err[-3000:]
    assert summary(run_dir)["status"] == "interrupted"
    assert steps_written_twice(run_dir) == 0
    assert holder_of(run_dir) is None
