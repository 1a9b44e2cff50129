"""`lightning sweep --launcher local` in the test process: what `run_local` prints and when, what each
training is started with, and how SIGTERM (or Ctrl-C) stops the trainings.

test_sweep_end_to_end.py checks the same promises through a `lightning sweep` subprocess; mutmut follows
only code run in the test process, so they are held here again, against stand-in trainings: scripted
processes where the order of events must be exact, real processes where the kernel decides (sessions,
signals, file descriptors).
"""
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_app.sweep import local
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.lightning_app.sweep.test_sweep_launchers import make_sweep

pytestmark = pytest.mark.usefixtures("run_from_repo_root")

NORMS = ("bn", "gn", "gn_plus_gn_first", "gn_plus_parallel", "gn_plus_bn_first")


def planned(tmp_path, count: int):
    """The first `count` runs of a sweep over the norms, planned before any of them started."""
    return plan_sweep(load_sweep(make_sweep(tmp_path, f"  model.norm: [{', '.join(NORMS[:count])}]\n")))


def finish(run_dir: Path, status: str = "completed", **fields) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": status, **fields}))


class Terminal:
    """sys.stdout as a pipe or a file is: what is printed waits in a buffer until flushed."""

    def __init__(self):
        self.shown, self.pending = "", ""

    def write(self, text):
        self.pending += text
        return len(text)

    def flush(self):
        self.shown, self.pending = self.shown + self.pending, ""

    def lines(self) -> list[str]:
        return (self.shown + self.pending).splitlines()


class ScriptedTraining:
    """Stands in for the `lightning fit` process: it ends at its n-th poll with an exit code and a
    summary.json, and checks at every poll that the sweep's printed lines have left its buffer (a user
    tailing `nohup lightning sweep ... > sweep.log` sees each line while the sweep waits)."""

    script: dict = {}  # run directory -> (polls until it ends, exit code, summary fields, fit arguments)
    launched: list = []
    terminal: Terminal

    def __init__(self, command, env, **kwargs):
        self.run_dir = next(run_dir for run_dir, (_, _, _, args) in self.script.items() if command[4:] == args)
        self.polls_left, self.exit_code, self.summary, _ = self.script[self.run_dir]
        self.launched.append((self.run_dir, env, kwargs))
        self.returncode = None

    def poll(self):
        assert self.terminal.pending == "", f"still in the sweep's buffer while it waits: {self.terminal.pending!r}"
        self.polls_left -= 1
        if self.polls_left == 0:
            if self.summary is not None:
                finish(self.run_dir, **self.summary)
            self.returncode = self.exit_code
        return self.returncode


@pytest.fixture
def scripted(monkeypatch):
    """(set the trainings' scripts, the sleeps the sweep took): stand-in trainings, a buffered stdout."""
    sleeps = []
    ScriptedTraining.terminal, ScriptedTraining.launched = Terminal(), []
    monkeypatch.setattr(local.subprocess, "Popen", ScriptedTraining)
    monkeypatch.setattr(local.time, "sleep", sleeps.append)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def set_scripts(runs, scripts):
        """`scripts[i]`: (polls, exit code, summary fields) of run i's training; None for a run never started.
        Called in the test itself: pytest puts its own sys.stdout back after the fixtures are set up."""
        monkeypatch.setattr(sys, "stdout", ScriptedTraining.terminal)
        ScriptedTraining.script = {run.run_dir: (*script, run.args) for run, script in zip(runs, scripts) if script}

    return set_scripts, sleeps


def test_every_line_of_a_parallel_sweep_in_order_and_shown_while_it_waits(tmp_path, monkeypatch, scripted, capsys):
    """Five runs, three at once on GPUs 3, 5, 7: one fails after writing a completed summary, one ends,
    one is refused because another sweep finished it meanwhile, two were finished by another sweep
    before their turn (each skipped where it stands, the next run taking its slot)."""
    set_scripts, sleeps = scripted
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    runs = planned(tmp_path, 5)
    dirs = [run.run_dir for run in runs]
    set_scripts(runs, [(3, 1, {"test_acc": 0.75}), (1, 0, {"test_acc": 0.25}), None,
                       (2, 2, {"test_acc": 0.5}), None])
    finish(dirs[2], test_acc=0.5)
    finish(dirs[4], status="exploded")
    logs = tmp_path / "new" / "logs"  # its parent does not exist yet
    assert local.run_local(runs, parallel=3, log_dir=logs) == 1
    log = {i: f"; log: {logs / dirs[i].name}.log" for i in range(5)}
    assert ScriptedTraining.terminal.lines() == [
        f"sweep: [1/5] start {dirs[0]} (GPU 3)",
        f"sweep: [2/5] start {dirs[1]} (GPU 5)",
        f"sweep: [3/5] skipped (completed by another process) {dirs[2]}",
        f"sweep: [4/5] start {dirs[3]} (GPU 7)",
        f"sweep: completed (exit 0) {dirs[1]} | test/acc 0.2500{log[1]}",
        f"sweep: [5/5] skipped (exploded by another process) {dirs[4]}",
        f"sweep: skipped (completed by another process) (exit 2) {dirs[3]}{log[3]}",
        f"sweep: completed (exit 1) {dirs[0]}{log[0]}",  # a completed summary does not make an exit 1 finished
    ]
    assert capsys.readouterr().err.splitlines() == [f"sweep: 1 run(s) failed: {dirs[0]}"]
    assert sleeps == [0.2, 0.2, 0.2]  # one look every 0.2 s while trainings run
    started = [(run_dir, env["CUDA_VISIBLE_DEVICES"], kwargs["stdout"].name, kwargs["stderr"], kwargs["stdout"].closed)
               for run_dir, env, kwargs in ScriptedTraining.launched]
    assert started == [(dirs[i], gpu, f"{logs / dirs[i].name}.log", subprocess.STDOUT, True)
                       for i, gpu in ((0, "3"), (1, "5"), (3, "7"))]
    # the same command again, the log folder there now: nothing left to run, and no wait for nothing
    sleeps.clear()
    for run_dir in dirs:
        finish(run_dir)
    assert local.run_local(runs, parallel=3, log_dir=logs) == 0
    assert sleeps == [0]


def test_a_sequential_sweep_prints_no_gpu_and_no_log_and_makes_no_log_folder(tmp_path, monkeypatch, scripted):
    set_scripts, sleeps = scripted
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runs = planned(tmp_path, 2)
    set_scripts(runs, [(1, 0, {"test_acc": 0.125}), (2, 0, {})])
    assert local.run_local(runs, parallel=1, log_dir=tmp_path / "logs", poll_seconds=0.5) == 0
    assert ScriptedTraining.terminal.lines() == [
        f"sweep: [1/2] start {runs[0].run_dir}",
        f"sweep: completed (exit 0) {runs[0].run_dir} | test/acc 0.1250",
        f"sweep: [2/2] start {runs[1].run_dir}",
        f"sweep: completed (exit 0) {runs[1].run_dir}",
        "sweep: all 2 runs finished"]
    assert sleeps == [0.5, 0.5, 0.5]
    assert [(kwargs["stdout"], kwargs["stderr"]) for _, _, kwargs in ScriptedTraining.launched] == [(None, None)] * 2
    assert not (tmp_path / "logs").exists()


def test_too_few_gpus_for_parallel_names_them_and_what_to_ask_for(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(ValueError) as info:
        local.run_local(planned(tmp_path, 3), parallel=3, log_dir=tmp_path / "logs")
    assert str(info.value) == "--parallel 3 needs 3 GPUs, 2 are visible (3,5); use --parallel 2 or fewer"
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("listed,expected", [("-1", []), (" 2, -1,4 ,", ["2", "4"]), ("", [])])
def test_visible_gpus_reads_cuda_visible_devices(monkeypatch, listed, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert local.visible_gpus() == expected


def test_visible_gpus_without_cuda_visible_devices_is_every_cuda_device(monkeypatch):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert local.visible_gpus() == ["0", "1", "2"]


PROBE = """import ctypes, json, os, signal, sys
death_signal = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(death_signal))  # PR_GET_PDEATHSIG
print(json.dumps({"own_session": os.getsid(0) == os.getpid(), "death_signal": death_signal.value,
                  "sigint_raises": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                  "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": os.environ.get("OMP_NUM_THREADS")}))
print("on stderr", file=sys.stderr)
"""


@pytest.fixture
def probe_trainings(monkeypatch):
    """Real processes started with every keyword argument the sweep gives: a probe in place of `fit`,
    started while this process ignores SIGINT (as a shell's `sweep &` leaves it)."""
    real_popen = subprocess.Popen
    monkeypatch.setattr(local.subprocess, "Popen",
                        lambda command, env, **kwargs: real_popen([sys.executable, "-c", PROBE], env=env, **kwargs))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_training_gets_its_own_session_sigint_and_the_parent_death_signal(tmp_path, probe_trainings):
    (run,) = planned(tmp_path, 1)
    process, _, log = local._start(run, "5", tmp_path, threads=2)
    assert process.wait(timeout=60) == 0
    log.close()
    report, stderr = Path(log.name).read_text().splitlines()  # stderr joins stdout in the run's log
    assert json.loads(report) == {"own_session": True, "death_signal": signal.SIGTERM, "sigint_raises": True,
                                  "gpus": "5", "threads": "2"}
    assert stderr == "on stderr"


def test_a_training_without_a_log_writes_to_the_sweeps_own_streams(tmp_path, probe_trainings, capfd, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    (run,) = planned(tmp_path, 1)
    process, _, log = local._start(run, None, None)
    assert process.wait(timeout=60) == 0 and log is None
    captured = capfd.readouterr()
    assert json.loads(captured.out)["gpus"] == "3,5" and json.loads(captured.out)["threads"] is None
    assert captured.err == "on stderr\n"


class StoppableTraining:
    """A training for `_stop` on a clock of its own: it exits `exits_after` seconds after a SIGINT
    (None: it hangs until killed)."""

    def __init__(self, clock, exits_after):
        self.clock, self.exits_after = clock, exits_after
        self.signals, self.timeouts, self.returncode = [], [], None

    def poll(self):
        return self.returncode

    def send_signal(self, signum):
        self.signals.append(signum)

    def wait(self, timeout=None):
        self.timeouts.append(timeout)
        if self.returncode is not None:
            return self.returncode
        if self.signals and self.exits_after is not None and self.exits_after <= timeout:
            self.clock[0] += self.exits_after
            self.returncode = 0
            return 0
        self.clock[0] += timeout
        raise subprocess.TimeoutExpired("fit", timeout)

    def kill(self):
        self.returncode = -signal.SIGKILL


def test_stop_gives_every_training_one_sigint_and_two_minutes_then_kills_what_hangs(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(local.time, "monotonic", lambda: clock[0])
    graceful, hung, also_hung, ended = (StoppableTraining(clock, after) for after in (30.0, None, None, 1.0))
    ended.returncode = 0  # exited on its own before the stop: no signal for it
    log = open(tmp_path / "a.log", "w")
    local._stop({0: (graceful, None, log), 1: (hung, None, None), 2: (also_hung, None, None), 3: (ended, None, None)})
    assert [p.signals for p in (graceful, hung, also_hung, ended)] == [[signal.SIGINT]] * 3 + [[]]
    assert [p.returncode for p in (graceful, hung, also_hung)] == [0, -signal.SIGKILL, -signal.SIGKILL]
    # 120 s in all from the SIGINT: 30 for the graceful one, the other 90 for the next, then a last 0.1 s each
    assert [p.timeouts for p in (graceful, hung, also_hung)] == [[120.0], [90.0, None], [0.1, None]]
    assert log.closed


def test_sigterm_stops_the_running_trainings_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Real trainings: the second one SIGTERMs the sweep once both run; each stops on the one SIGINT it
    gets, the third never starts, the exit status is 130 and the sweep's SIGTERM handler is put back."""
    runs = planned(tmp_path, 3)
    training = ("import os, signal, sys, time\n"
                "try:  # all of it: the sweep's SIGINT may come at any point once the SIGTERM is sent\n"
                "    open(sys.argv[1] + '.started', 'w').close()\n"
                "    if sys.argv[2] == 'second':  # once the first listens for Ctrl-C too\n"
                "        while not os.path.exists(sys.argv[1][:-1] + '0.started'):\n            time.sleep(0.01)\n"
                "        os.kill(os.getppid(), signal.SIGTERM)\n"
                "    time.sleep(60)\n"
                "except KeyboardInterrupt:\n    open(sys.argv[1] + '.stopped', 'w').close()\n")
    real_popen = subprocess.Popen

    def popen(command, env, **kwargs):
        index = next(i for i, run in enumerate(runs) if run.args == command[4:])
        return real_popen([sys.executable, "-c", training, str(tmp_path / str(index)), ("first", "second")[index]],
                          env=env, **kwargs)

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    ours = []

    def on_sigterm(signum, frame):  # in place of the default (this process's death) should the sweep miss one
        ours.append(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        assert local.run_local(runs, parallel=2, log_dir=tmp_path / "logs", poll_seconds=0.05) == 130
        assert signal.getsignal(signal.SIGTERM) is on_sigterm and not ours
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.glob("[0-9]*")) == ["0.started", "0.stopped", "1.started", "1.stopped"]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "sweep: interrupted; 2 run(s) stopped, 1 not started. Run the same command again to resume.")
