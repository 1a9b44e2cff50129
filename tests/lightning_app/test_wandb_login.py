"""W&B logging asked for, without offline mode and without a usable login: one line that says what to do
(`wandb login` or WANDB_MODE=offline) within seconds, before any run directory exists. Real processes
with a clean HOME (no ~/.netrc), so that wandb sees exactly the environment given."""
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, tiny_args
from tests.lightning_app.readme_table import assert_documented

ERROR_PREFIX = "normlab: error: "


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def fit_with_wandb(data_dir, tmp_path, *extra, **env_vars):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), NORMLAB_DEBUG="", PYTHONPATH=str(ROOT), **env_vars)
    args = tiny_args(data_dir, tmp_path / "runs", "--config", str(ROOT / "configs/presets/wandb.yaml"), *extra)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "lightning_app", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def refusal_seconds(data_dir, tmp_path_factory):
    """How long the same process takes to refuse a bad value before any W&B check: the start and imports
    alone, which a loaded machine stretches far beyond the few seconds the check itself may take."""
    result, seconds = fit_with_wandb(data_dir, tmp_path_factory.mktemp("baseline"), "--model.nrom", "gn")
    assert result.returncode == 2 and "nrom" in result.stderr, result.stderr[-3000:]
    return seconds


@pytest.mark.parametrize("case", ["no login", "a wrong key, W&B unreachable"])
def test_wandb_without_a_usable_login_is_one_line_before_any_run_directory(data_dir, tmp_path, case,
                                                                          refusal_seconds):
    extra = {} if case == "no login" else {"WANDB_API_KEY": "0123456789" * 4,
                                           "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    result, seconds = fit_with_wandb(data_dir, tmp_path, **extra)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "WANDB_MODE=offline" in errors[0] and "wandb login" in errors[0]
    assert_documented("W&B logging without offline mode and without a usable login", errors[0][len(ERROR_PREFIX):])
    assert not (tmp_path / "runs").exists()
    # beyond the process start: main blocked ~110 s on a wrong key; the check's own timeout is 5 s
    assert seconds - refusal_seconds < 40, (seconds, refusal_seconds)


def test_a_login_check_that_never_ends_is_killed_at_the_deadline_with_its_children(tmp_path, monkeypatch):
    """Whatever wandb does (a network that drops packets kept a CI run's process alive for 10 minutes), the
    check returns at its deadline, and the probe and everything it started are gone. The stand-in probe is a
    real process that starts a child of its own and then never answers."""
    from lightning_app import wandb_logger

    pids = tmp_path / "pids"
    hang = ("import os, subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(600)']); open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}'); time.sleep(600)")
    monkeypatch.setattr(wandb_logger, "LOGIN_PROBE", (sys.executable, "-c", hang, str(pids)))
    monkeypatch.setattr(wandb_logger, "LOGIN_DEADLINE_SECONDS", 3)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the test session's default is offline
    started = time.monotonic()
    with pytest.raises(ValueError, match="did not answer the login check within 3 s; run 'wandb login'"):
        wandb_logger.check_login(wandb_logger.WandbOptions())
    assert time.monotonic() - started < 3 + 5
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):  # reaped by us (the probe) or by init (its child)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)


def test_the_probe_reports_what_stopped_it(tmp_path, monkeypatch):
    """A probe that dies without writing its outcome is a failed check naming its exit status."""
    from lightning_app import wandb_logger

    monkeypatch.setattr(wandb_logger, "LOGIN_PROBE", (sys.executable, "-c", "import sys; sys.exit(7)"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(ValueError, match=r"could not be verified \(the login check exited with status 7\)"):
        wandb_logger.check_login(wandb_logger.WandbOptions())
