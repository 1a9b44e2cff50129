"""The disk fills up in the middle of a run: one `normlab: error:` line naming the cause and the path,
`summary.json` left true (or the line says it could not be written), the last whole checkpoint kept, and
the same command resumes the run once space is back. A read-only runs root is refused before anything
is written, naming it as read-only.

Real file systems (slow tier, root): a small tmpfs holds the runs root; the test fills it once the run
has saved its first checkpoint. (A tmpfs cannot be remounted read-only while the run holds files open
for writing, its lock among them, so the read-only case is the one at start.) Each mount is undone in
a finally.
"""
import errno
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from lightning_app.checkpoints import load_checkpoint_file
from tests.helpers import ROOT, error_line, tiny_args
from tests.lightning_app.readme_table import assert_documented

pytestmark = pytest.mark.slow

ERROR_PREFIX = "normlab: error: "


@contextmanager
def tmpfs(folder: Path, options: str):
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (this tier runs as root on the project's machines and in .ci/run)")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    with tmpfs(tmp_path / "small_disk", "size=24m") as folder:
        yield folder


def fill(folder: Path) -> Path:
    """Write a file until the file system has no byte left."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def start(args):
    env = {**os.environ, "WANDB_MODE": "offline", "NORMLAB_DEBUG": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "lightning_app", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_checkpoint(process, last: Path, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not last.is_file():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.1)


def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes_once_space_is_back(fake_mnist_dir, small_tmpfs):
    root = small_tmpfs / "runs"
    args = tiny_args(fake_mnist_dir, root, "--run_name", "r", "--trainer.max_epochs", "10",
                     "--checkpoint_every_n_steps", "2", "--test_after_fit", "false")
    run_dir = root / "quickstart" / "r"
    last = run_dir / "checkpoints" / "last.ckpt"
    process = start(args)
    wait_for_checkpoint(process, last)
    filler = fill(small_tmpfs)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, stderr[-3000:]
    message = errors[0][len(ERROR_PREFIX):]
    assert message.startswith(f"No space left on device: {run_dir}/") and f"; run dir: {run_dir}; " in message
    assert_documented("a full disk during a run (exit 1; a read-only file system or a quota alike)", message)
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["status"] == "running":
        assert "summary.json could not be written: it still says running" in message, message
    else:
        assert summary["status"] == "failed" and "No space left on device" in summary["error"], summary
        assert "summary.json says failed" in message
    saved = load_checkpoint_file(last)  # the last whole checkpoint, loadable
    assert saved["global_step"] >= 2
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    filler.unlink()
    relaunch = start(args)  # the same command, space back
    _, stderr = relaunch.communicate(timeout=900)
    assert relaunch.returncode == 0, stderr[-3000:]
    assert f"resuming the interrupted run in {run_dir}" in stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert load_checkpoint_file(last)["global_step"] == 60  # 10 epochs of 6 steps: the run went to its end


def test_a_read_only_runs_root_is_refused_before_anything_is_written(fake_mnist_dir, tmp_path, capsys):
    from lightning_app.command import main

    with tmpfs(tmp_path / "read_only", "ro,size=1m") as root:
        message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root / "runs")))
        assert message == (f"cannot write to {root} (read-only file system); set trainer.default_root_dir to a "
                           "directory you can write")
        assert_documented("root not writable", message)
        assert list(root.iterdir()) == []
