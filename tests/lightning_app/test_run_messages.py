"""The one-line messages and names that `lightning_app/run/` gives a user, each against the exact text
the code is meant to print (the README's bad-input table and the module docstrings): an OS error's cause
and file, a locked run's holder, a signal's name and exit status, an evaluation directory's name."""
import errno
import json
import signal
from datetime import datetime, timezone

import pytest

from lightning_app.run import evaluation
from lightning_app.run.failure import RunFailed, describe_os_error
from lightning_app.run.interrupt import RunInterrupted
from lightning_app.run.lock import RunLocked, describe_holder
from lightning_app.run.paths import EVAL_DIR, SUMMARY_FILE, name_limit

RELAUNCH = ("the last whole checkpoint is kept: once the file system takes writes again, relaunch the same "
            "command to resume")


def with_errno(number: int) -> OSError:
    error = OSError()
    error.errno = number
    return error


@pytest.mark.parametrize("error, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x/last.ckpt"), "No space left on device: /runs/x/last.ckpt"),
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (with_errno(errno.EIO), "EIO"),  # no text: the errno's symbolic name
    (PermissionError(), "PermissionError"),  # neither: the error's type
])
def test_an_os_error_is_its_cause_and_its_file(error, expected):
    assert describe_os_error(error) == expected


@pytest.mark.parametrize("summary, record", [
    (None, "summary.json could not be written: it still says running"),  # never written
    ({"status": "running"}, "summary.json could not be written: it still says running"),
    ("{cut", "summary.json could not be written: it still says running"),  # unreadable
    ({"status": "failed"}, "summary.json says failed"),
])
def test_a_failed_run_says_what_its_summary_says_now(tmp_path, summary, record):
    if summary is not None:
        (tmp_path / SUMMARY_FILE).write_text(summary if isinstance(summary, str) else json.dumps(summary))
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.csv"))
    assert str(RunFailed(error, tmp_path)) == (f"No space left on device: {tmp_path / 'metrics.csv'}; run dir: "
                                               f"{tmp_path}; {record}; {RELAUNCH}")


def test_a_failed_evaluation_is_the_cause_alone():
    assert str(RunFailed(OSError(errno.ENOSPC, "No space left on device", "/e/m.csv"), None)) == \
        "No space left on device: /e/m.csv"


@pytest.mark.parametrize("holder, described", [
    ({"pid": 42, "host": "n1", "started": "2026-12-07T10:00:00+00:00"},
     "pid 42 on host n1, started 2026-12-07T10:00:00+00:00"),
    ({"pid": 42}, "pid 42 on host ?, started ?"),  # an old or partial lock file
    ({"host": "n1"}, "pid ? on host n1, started ?"),
    ({}, "another process"),
])
def test_a_locked_run_names_its_holder(tmp_path, holder, described):
    assert describe_holder(holder) == described
    locked = RunLocked(tmp_path, holder)
    assert str(locked) == (f"{tmp_path} is in use by another training ({described}); wait for it to end or stop it "
                           "(a stopped process releases the run at once), or set --run_name / --experiment to "
                           "write elsewhere")
    assert locked.holder == holder and isinstance(locked, ValueError)


@pytest.mark.parametrize("signum, final_test, tail", [
    (signal.SIGTERM, False, "interrupted by SIGTERM | run dir: {d} | status: interrupted; relaunch the same command "
                            "to resume"),
    (signal.SIGINT, True, "interrupted by SIGINT during the final test | run dir: {d} | status: completed, not "
                          "tested; relaunch the same command to run the test"),
])
def test_an_interruption_names_the_signal_and_exits_as_a_shell_reports_it(tmp_path, signum, final_test, tail):
    interrupted = RunInterrupted(signum, tmp_path, final_test)
    assert str(interrupted) == tail.format(d=tmp_path)
    assert interrupted.exit_code == 128 + signum and interrupted.signum == signum and interrupted.where == tmp_path
    assert str(RunInterrupted(signal.SIGINT, None)) == "interrupted by SIGINT"  # before any run directory


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 12, 7, 9, 5, 3, tzinfo=timezone.utc)


def test_an_evaluation_directory_is_named_by_subcommand_checkpoint_and_time(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "datetime", FrozenClock)
    names = [evaluation.new_eval_dir(tmp_path, "test", "/r/checkpoints/last.ckpt") for _ in range(3)]
    assert [p.relative_to(tmp_path).as_posix() for p in names] == [
        f"{EVAL_DIR}/test-last-20261207T090503Z", f"{EVAL_DIR}/test-last-20261207T090503Z-1",
        f"{EVAL_DIR}/test-last-20261207T090503Z-2"]  # two in the same second: a suffix, never a shared folder
    assert all(p.is_dir() for p in names)
    assert evaluation.new_eval_dir(tmp_path, "predict", None).name == "predict-no_checkpoint-20261207T090503Z"


def test_a_long_checkpoint_name_is_cut_to_what_the_file_system_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "datetime", FrozenClock)
    limit = name_limit(tmp_path)[0]
    made = evaluation.new_eval_dir(tmp_path, "validate", "/r/" + "λ" * limit + ".ckpt")
    room = limit - len("validate--20261207T090503Z-999".encode())
    assert made.name == "validate-" + "λ" * (room // 2) + "-20261207T090503Z"  # whole characters only
    assert len(made.name.encode()) <= limit - len("-999")


@pytest.mark.parametrize("limit, stem", [(60, "last"), (len("test--20261207T090503Z-999"), "l")])
def test_the_cut_uses_the_run_directory_s_own_file_system_and_keeps_one_byte(tmp_path, monkeypatch, limit, stem):
    """NAME_MAX is read where the evaluation is written (a run on another file system than the working
    directory), and even a limit that leaves no room keeps one byte of the checkpoint's name."""
    monkeypatch.setattr(evaluation, "datetime", FrozenClock)
    monkeypatch.setattr(evaluation, "name_limit", lambda root: (limit if root == tmp_path else 255, root))
    assert evaluation.new_eval_dir(tmp_path, "test", "/r/checkpoints/last.ckpt").name == f"test-{stem}-20261207T090503Z"


def test_an_evaluation_summary_records_what_ran_and_when_in_utc(tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    summary = evaluation.write_eval_summary(tmp_path, "test", None, {"test_acc": 0.5, "test_loss": float("nan")},
                                            rows=3)
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == summary
    finished = datetime.fromisoformat(summary.pop("finished"))
    assert finished.utcoffset().total_seconds() == 0 and before <= finished <= datetime.now(timezone.utc)
    assert summary == {"subcommand": "test", "checkpoint": None, "metrics": {"test_acc": 0.5, "test_loss": None},
                       "rows": 3}


def test_no_prediction_batches_write_a_header_only_predictions_file(tmp_path):
    assert evaluation.write_predictions(tmp_path, []) == 0
    assert (tmp_path / "predictions.csv").read_text().splitlines() == ["index,prediction,label"]
