"""What a relaunch decides, in-process (mutation testing cannot see the same code run by a `lightning`
subprocess): which checkpoint a fit continues from, when a run finished meanwhile is refused, what the
lock file says about its holder, and how SIGTERM/SIGINT become an interruption."""
import json
import os
import signal
import socket
from datetime import datetime, timedelta, timezone

import pytest

from lightning_app.run import interrupt
from lightning_app.run.launch import eval_run_dir, fit_resume_checkpoint, take_run_dir
from lightning_app.run.lock import RunLock, RunLocked, read_holder
from lightning_app.run.paths import (CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, LOCK_FILE, SUMMARY_FILE, SWEEP_DIR,
                                     experiment_of, sweep_dir_of)
from lightning_app.run.status import read_status


def make_run(run_dir, status=None, test_acc=None, checkpoint=True):
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True)
    if checkpoint:
        (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).write_bytes(b"ckpt")
    if status is not None:
        (run_dir / SUMMARY_FILE).write_text(json.dumps({"status": status, "test_acc": test_acc}))
    return run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT


@pytest.mark.parametrize("status, overwrite, ckpt_path, test_after_fit, resumes", [
    ("interrupted", False, None, False, True),
    (None, False, None, False, True),  # killed before its first summary
    ("interrupted", True, None, False, False),  # --overwrite starts over
    ("interrupted", False, "/elsewhere/x.ckpt", False, False),  # an explicit checkpoint wins
    ("completed", False, None, False, False),  # finished: nothing to continue
    ("exploded", False, None, False, False),
    ("completed", False, None, True, True),  # finished but never tested: its end of training, then the test
])
def test_a_relaunch_continues_from_last_ckpt_only_when_the_run_is_unfinished(tmp_path, status, overwrite, ckpt_path,
                                                                             test_after_fit, resumes):
    last = make_run(tmp_path / "run", status)
    assert fit_resume_checkpoint(tmp_path / "run", overwrite, ckpt_path, test_after_fit) == (last if resumes else None)


@pytest.mark.parametrize("checkpoint, belongs_to", [
    ("old/run_a/checkpoints/last.ckpt", "old/run_a"),  # saved in a run: that run, whatever the config says
    ("loose/model.ckpt", "exp/named"),  # outside any run: the run the config names
    ("old/run_a/checkpoints/missing.ckpt", "exp/named"),  # not a file: nothing to follow
    (None, "exp/named"),
])
def test_an_evaluation_belongs_to_the_run_its_checkpoint_was_saved_in(tmp_path, checkpoint, belongs_to):
    make_run(tmp_path / "old" / "run_a")
    (tmp_path / "old" / "run_a" / CONFIG_FILE).write_text("seed_everything: 0\n")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "model.ckpt").write_bytes(b"ckpt")
    where = eval_run_dir(tmp_path, "exp", "named", str(tmp_path / checkpoint) if checkpoint else None)
    assert where == tmp_path / belongs_to


def test_a_run_that_finished_while_this_one_started_is_refused_and_the_lock_released(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, "completed", test_acc=0.5)
    with pytest.raises(ValueError) as info:
        take_run_dir(run_dir, overwrite=False)
    assert str(info.value) == (f"{run_dir} already holds a completed run (finished while this one started); "
                               "pass --overwrite true to replace it")
    RunLock(run_dir).acquire()  # released: another process can take it


def test_a_finished_run_without_its_test_is_taken_when_the_test_is_asked_for(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, "completed", test_acc=None)
    with pytest.raises(ValueError, match="already holds a completed run"):
        take_run_dir(run_dir, overwrite=False)  # by default no final test is asked for
    lock = take_run_dir(run_dir, overwrite=False, test_after_fit=True)
    assert lock.held and (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()  # kept: the test needs it
    lock.release()


def test_the_lock_file_names_its_holder_and_nothing_else(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text("x" * 500)  # a longer leftover from an earlier holder
    lock = RunLock(run_dir)
    lock.acquire()
    holder = json.loads((run_dir / LOCK_FILE).read_text())
    assert holder == read_holder(run_dir)
    assert set(holder) == {"pid", "host", "started"}
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    started = datetime.fromisoformat(holder["started"])
    assert started.utcoffset() == timedelta(0) and abs(datetime.now(timezone.utc) - started) < timedelta(seconds=60)
    with pytest.raises(RunLocked) as info:  # a second lock of the same run (flock is per open file)
        RunLock(run_dir).acquire()
    assert str(info.value).startswith(f"{run_dir} is in use by another training (pid {os.getpid()} on host ")
    lock.release()


@pytest.fixture
def recording():
    with interrupt.recording():
        yield


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_outside_lightning_a_signal_stops_the_process_and_is_remembered(recording, signum, tmp_path):
    assert interrupt.interruption(tmp_path) is None
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signum)
    stopped = interrupt.interruption(tmp_path, final_test=True)
    assert (stopped.signum, stopped.where, stopped.exit_code) == (signum, tmp_path, 128 + signum)
    assert "during the final test" in str(stopped)


def test_inside_lightning_sigterm_only_flags_and_sigint_still_stops(recording):
    """Lightning's SIGTERM handler (installed over ours, calling ours after flagging the trainer) stops the
    loop at the next batch boundary: ours must not raise for SIGTERM then, but still does for Ctrl-C."""
    ours = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: ours(signum, frame))
    try:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:  # caught here: uncaught, it would end the whole test session, not fail a test
            pytest.fail("SIGTERM inside Lightning's loop raised KeyboardInterrupt instead of letting it stop")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert str(interrupt.interruption(None)) == "interrupted by SIGTERM"  # the first signal decides


def test_a_stop_inside_a_deferred_block_comes_when_the_block_ends(recording):
    reached_the_end_of_the_block = False
    with pytest.raises(KeyboardInterrupt):
        with interrupt.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached_the_end_of_the_block = True
    assert reached_the_end_of_the_block


def test_a_lock_file_this_user_cannot_open_is_one_line_and_leaves_no_directory(tmp_path, monkeypatch):
    """Another user's run (this test runs as root in CI, where chmod cannot deny: the open is made to fail)."""
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    run_dir = tmp_path / "root" / "exp" / "run"
    monkeypatch.setattr("lightning_app.run.lock.os.open", denied)
    with pytest.raises(ValueError) as info:
        RunLock(run_dir).acquire()
    assert str(info.value) == (f"cannot lock {run_dir / LOCK_FILE} (permission denied: another user's run?); set "
                               "--run_name / --experiment to write elsewhere")
    assert not (tmp_path / "root").exists()  # the directories acquire made are gone again


def test_a_run_knows_its_experiment_and_sweep_folders_and_a_fresh_one_has_no_status(tmp_path):
    run_dir = tmp_path / "root" / "exp" / "run"
    assert experiment_of(run_dir) == tmp_path / "root" / "exp"
    assert sweep_dir_of(run_dir) == tmp_path / "root" / "exp" / SWEEP_DIR
    run_dir.mkdir(parents=True)
    assert read_status(run_dir) is None  # never wrote a summary


def test_a_released_lock_is_no_longer_held(tmp_path):
    lock = RunLock(tmp_path / "run")
    assert not lock.held
    lock.acquire()
    assert lock.held
    lock.release()
    assert not lock.held
    lock.release()  # twice: nothing to do


def test_a_lock_file_replaced_between_open_and_lock_is_locked_anew(tmp_path, monkeypatch):
    """Another process's release removes the lock file (and a third creates a new one) while this one
    waits between its open and its flock: the lock must end on the file at the path, not the orphan."""
    from lightning_app.run import lock as lock_module

    real_flock = lock_module._try_flock
    replaced = []

    def flock_after_a_replacement(fd, operation, *args):
        if not replaced:
            path = tmp_path / "run" / LOCK_FILE
            path.unlink()
            path.write_text("")
            replaced.append(True)
        return real_flock(fd, operation, *args)

    monkeypatch.setattr(lock_module, "_try_flock", flock_after_a_replacement)
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    assert read_holder(tmp_path / "run")["pid"] == os.getpid()  # written to the file others will read
    with pytest.raises(RunLocked):
        RunLock(tmp_path / "run").acquire()
    lock.release()
