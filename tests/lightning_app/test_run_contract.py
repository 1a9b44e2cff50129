"""The run-directory contract (`lightning_app/run/`), piece by piece and cheaply: names that would
escape the root, --overwrite that deletes only a run, the lock between two real processes (one of
them SIGKILLed), file modes, what counts as the same science, the sweep's view of a locked run.
The process-level cases (two fits at once, SIGTERM, SIGINT) are in test_run_processes.py (slow)."""
import json
import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import pytest
import torch

from callbacks.run_files import atomic_write_text
from callbacks.summary_file import SUMMARY_FILE
from lightning_app.checkpoints import AtomicCheckpointIO
from lightning_app.command import main
from lightning_app.report.groups import science_items
from lightning_app.report.runs import RunRecord
from lightning_app.run.identity import DATA_NAMES, data_name, derive_run_name, first_difference, science_config
from lightning_app.run.launch import check_fit_target, take_run_dir
from lightning_app.run.lock import RunLock, RunLocked, holder_of
from lightning_app.run.paths import LOCK_FILE, check_name, check_writable, clear_run_dir, resume_checkpoint
from lightning_app.run.status import INTERRUPTED, KILLED, RUNNING, live_status, read_status
from tests.helpers import ROOT, error_line, snapshot, tiny_args


@pytest.mark.parametrize("name", ["a/b", "/abs/path", ".", "..", "../up", ".hidden", ""])
def test_a_name_must_be_one_path_component(name):
    with pytest.raises(ValueError, match="must be a single directory name"):
        check_name("run_name", name)


def test_plain_names_pass():
    assert check_name("run_name", "fashion_mnist_small_cnn_gn_g4_bs128_lr0.003_s0_3f9a1c") \
        == "fashion_mnist_small_cnn_gn_g4_bs128_lr0.003_s0_3f9a1c"


@pytest.mark.parametrize("escape", [["--run_name", "{victim}"], ["--run_name", ".."], ["--run_name", "."],
                                    ["--experiment", ".."], ["--run_name", "sub/{victim_name}"]])
def test_overwrite_with_an_escaping_name_deletes_nothing(fake_mnist_dir, tmp_path, capsys, escape):
    """What main ran rmtree on: a directory outside the root, the root itself, every run of it."""
    victim = tmp_path / "victim"
    (victim / "keep.txt").parent.mkdir()
    (victim / "keep.txt").write_text("not a run")
    root = tmp_path / "runs"
    (root / "exp" / "other").mkdir(parents=True)
    (root / "exp" / "other" / "summary.json").write_text(json.dumps({"status": "completed"}))
    before = snapshot(tmp_path)
    extra = [a.format(victim=victim, victim_name=victim.name) for a in escape]
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, "--experiment", "exp", "--overwrite",
                                                        "true", *extra)))
    assert "must be a single directory name" in message
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["fake_mnist", "runs", "victim"]


def test_overwrite_empties_only_a_normlab_run_and_keeps_the_lock(tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="holds no normlab run"):
        clear_run_dir(stranger)
    assert (stranger / "thesis.tex").read_text() == "years of work"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv", LOCK_FILE, "checkpoints/last.ckpt"):
        (run / name).write_text("x")
    clear_run_dir(run)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]


def _hold_lock_in_child(run_dir):
    """A real second process (fork) that takes the run's lock, reports, and waits to be killed."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only OS calls, then _exit (no pytest teardown in the child)
        try:
            os.close(ready_r)
            RunLock(run_dir).acquire()
            os.write(ready_w, b"1")
            signal.pause()
        finally:
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    return pid


# The rank variables of the launchers Lightning supports (torchrun, SLURM, LSF), as a DDP job's processes see them.
RANK_ENVIRONMENT = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


@pytest.mark.parametrize("env,launching", [
    ({}, True),  # a single-process run
    ({"RANK": "0", "LOCAL_RANK": "0", "NODE_RANK": "0", "SLURM_PROCID": "0"}, True),  # rank 0 of a job
    ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),  # the second device of the first node
    ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # the first device of the second node
    ({"GROUP_RANK": "1", "LOCAL_RANK": "0"}, False),  # torchrun's second node
    ({"SLURM_PROCID": "3"}, False),
    ({"RANK": "2"}, False),
    ({"JSM_NAMESPACE_RANK": "1"}, False),
], ids=["single", "rank0", "local1", "node1", "group1", "slurm3", "rank2", "lsf1"])
def test_under_ddp_only_the_launching_process_takes_the_run_lock(tmp_path, monkeypatch, env, launching):
    """One lock per job: the launching process takes it; every other rank neither takes it nor is refused
    while its rank 0 (here another real process) holds it, and the launching process is refused then."""
    for name in RANK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "runs" / "exp" / "run"
    lock = take_run_dir(run_dir, overwrite=False)
    try:
        assert (holder_of(run_dir) or {}).get("pid") == (os.getpid() if launching else None)
    finally:
        lock.release()
    pid = _hold_lock_in_child(run_dir)
    try:
        if launching:
            with pytest.raises(RunLocked, match=f"pid {pid} on host"):
                check_fit_target(run_dir, overwrite=False, ckpt_path=None)
        else:
            check_fit_target(run_dir, overwrite=False, ckpt_path=None)
            take_run_dir(run_dir, overwrite=False).release()
            assert holder_of(run_dir)["pid"] == pid  # rank 0's lock, untouched
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_the_lock_admits_one_process_and_a_sigkill_frees_it(tmp_path):
    run_dir = tmp_path / "runs" / "exp" / "run"
    assert holder_of(run_dir) is None  # and probing creates nothing
    assert not (tmp_path / "runs").exists()
    pid = _hold_lock_in_child(run_dir)
    try:
        assert holder_of(run_dir)["pid"] == pid
        second = RunLock(run_dir)
        with pytest.raises(RunLocked, match=f"is in use by another training \\(pid {pid} on host "):
            second.acquire()
        assert not second.held
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert holder_of(run_dir) is None  # the kernel released it with the process: no stale lock
    third = RunLock(run_dir)
    third.acquire()
    assert holder_of(run_dir)["pid"] == os.getpid()
    third.release()
    assert not (run_dir / LOCK_FILE).exists()  # nothing else was written: the run directory is as it was


def test_a_lock_that_finds_nothing_written_removes_the_directories_it_made(tmp_path):
    lock = RunLock(tmp_path / "runs" / "exp" / "run")
    lock.acquire()
    assert (tmp_path / "runs" / "exp" / "run" / LOCK_FILE).is_file()
    lock.release()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_run_files_and_checkpoints_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "last.ckpt")
        lock = RunLock(tmp_path / "run")
        lock.acquire()
        (tmp_path / "run" / "config.yaml").write_text("")  # so release keeps the lock file to look at
        lock.release()
    finally:
        os.umask(previous)
    for path in (tmp_path / "summary.json", tmp_path / "last.ckpt", tmp_path / "run" / LOCK_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_a_file_where_the_run_needs_a_directory_is_refused(tmp_path):
    (tmp_path / "root_file").write_text("")
    with pytest.raises(ValueError, match="root_file is a file"):
        check_writable(tmp_path / "root_file" / "exp" / "run")
    (tmp_path / "runs" / "exp" / "run").mkdir(parents=True)
    (tmp_path / "runs" / "exp" / "run" / "checkpoints").write_text("")
    with pytest.raises(ValueError, match="run/checkpoints is a file"):
        check_writable(tmp_path / "runs" / "exp" / "run")


def test_an_unwritable_root_is_refused():
    """As user nobody when the tests run as root (root may write anywhere), in a forked child."""
    base = Path(tempfile.mkdtemp(prefix="normlab-readonly-"))  # pytest's tmp_path is closed to other users
    os.chmod(base, 0o755)
    root = base / "readonly"
    root.mkdir(mode=0o555)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                check_writable(root / "exp" / "run")
                code = 1
            except ValueError as error:
                code = 0 if f"cannot write to {root}" in str(error) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(base)
    assert os.waitstatus_to_exitcode(status) == 0


def config(lr=0.1, **top):
    return {"model": {"norm": "gn", "lr": lr}, "data": {"class_path": "datamodules.FashionMNISTDataModule",
                                                        "init_args": {"batch_size": 8, "num_workers": 2}},
            "seed_everything": 0, "trainer": {"max_epochs": 1}, **top}


def test_measuring_callbacks_are_not_science_for_the_name_nor_the_report():
    probes = {"lambda_tracker": {"class_path": "callbacks.lambda_tracker.LambdaTracker"},
              "landscape": {"class_path": "callbacks.landscape.LandscapeProbe", "init_args": {"every_n_steps": 5}},
              "activation_stats": {"class_path": "callbacks.activation_stats.ActivationStatistics",
                                   "init_args": {"every_n_steps": 7, "layers": ["net.features.1"]}}}
    assert science_config(config(**probes)) == science_config(config())
    assert derive_run_name(config(**probes)) == derive_run_name(config())
    record = lambda cfg: RunRecord(None, {**cfg, "experiment": "e"}, {})  # noqa: E731
    assert science_items(record(config(**probes))) == science_items(record(config()))  # the report's grouping key
    assert derive_run_name(config(lr=0.2)) != derive_run_name(config())
    changed = config()
    changed["data"]["init_args"]["num_workers"] = 7  # not science
    assert derive_run_name(changed) == derive_run_name(config())


def test_the_data_names_written_out_are_the_registry_and_name_each_class_path_form():
    from datamodules import DATAMODULES

    assert DATA_NAMES == {f"{cls.__module__}.{cls.__name__}": name for name, cls in DATAMODULES.items()}
    for name, cls in DATAMODULES.items():
        for class_path in (f"{cls.__module__}.{cls.__name__}", cls.__name__, f"datamodules.{cls.__name__}"):
            assert data_name({"class_path": class_path}) == name
    assert data_name({"class_path": "my_project.data.MyDataModule"}) == "mydatamodule"  # unregistered: its class


def test_first_difference_names_the_dotted_key():
    assert first_difference(config(), config(lr=0.2)) == "model.lr: 0.1 -> 0.2"
    assert first_difference(config(), config()) is None
    assert first_difference({"a": {"b": 1}}, {"a": {}}) == "a.b: 1 -> None"


def test_resume_takes_the_newest_of_last_and_slurm_requeue_checkpoints(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    last, hpc = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_3.ckpt"
    assert resume_checkpoint(tmp_path) is None
    last.write_bytes(b"a")
    hpc.write_bytes(b"b")
    os.utime(last, ns=(10**18, 10**18))
    os.utime(hpc, ns=(2 * 10**18, 2 * 10**18))
    assert resume_checkpoint(tmp_path) == hpc
    os.utime(last, ns=(3 * 10**18, 3 * 10**18))
    assert resume_checkpoint(tmp_path) == last


def test_a_run_that_says_running_after_its_process_died_is_killed(tmp_path):
    run_dir = tmp_path / "runs" / "exp" / "run"
    pid = _hold_lock_in_child(run_dir)
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps({"status": RUNNING}))
    try:
        assert live_status(read_status(run_dir), run_dir) == RUNNING  # its process holds the lock
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert live_status(read_status(run_dir), run_dir) == KILLED  # nothing could write a last status
    assert live_status(INTERRUPTED, run_dir) == INTERRUPTED  # a status the process wrote is kept
    holder = json.loads((run_dir / LOCK_FILE).read_text())
    (run_dir / LOCK_FILE).write_text(json.dumps({**holder, "host": "another-node"}))
    assert live_status(RUNNING, run_dir) == RUNNING  # a lock says nothing about another machine's process
    (run_dir / LOCK_FILE).unlink()
    assert live_status(RUNNING, run_dir) == RUNNING  # no lock file: a copied runs/ tree


def test_the_sweep_plan_skips_a_run_locked_elsewhere_and_resumes_a_requeued_one(tmp_path, monkeypatch):
    from lightning_app.sweep.plan import plan_sweep, print_plan
    from lightning_app.sweep.spec import load_sweep
    from tests.lightning_app.sweep.test_sweep_launchers import make_sweep

    monkeypatch.chdir(ROOT)
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n"))
    first, second = plan_sweep(spec)
    second.run_dir.mkdir(parents=True)
    (second.run_dir / "hpc_ckpt_1.ckpt").write_bytes(b"")  # a SLURM requeue's checkpoint only
    pid = _hold_lock_in_child(first.run_dir)
    try:
        runs = plan_sweep(spec)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert [run.action for run in runs] == ["skip", "resume"]
    assert runs[0].state.startswith(f"running elsewhere: pid {pid} on host ")
    print_plan(spec, runs)
    assert [run.action for run in plan_sweep(spec)] == ["start", "resume"]  # the holder is gone


def test_ctrl_c_during_a_checkpoint_write_stops_once_the_file_is_whole(tmp_path, monkeypatch):
    """Interrupted inside torch.save's write callback, torch's C++ writer later aborted the interpreter."""
    from lightning_app.checkpoints import load_checkpoint_file
    from lightning_app.run.interrupt import interruption, recording

    real_save = torch.save

    def interrupted_save(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while the checkpoint is being written
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", interrupted_save)
    path = tmp_path / "last.ckpt"
    with recording(), pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 7}, path)
    assert interruption(None).exit_code == 130
    assert load_checkpoint_file(path)["global_step"] == 7
