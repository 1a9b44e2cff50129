"""Helpers shared by the test modules: the repository root, the tiny `lightning fit` command line that the
end-to-end tests run, and the checks for the one-line `normlab: error:` contract on bad input.

Fixtures live in tests/conftest.py; these are plain functions and constants, imported where needed."""
from pathlib import Path

import pytest

from lightning_app.run.paths import run_dirs  # noqa: F401  (the run directories under a runs root)

ROOT = Path(__file__).resolve().parents[1]

ERROR_PREFIX = "normlab: error: "


def tiny_args(data_dir, root, *extra):
    """`lightning fit` on the quickstart config for two short epochs on tiny data, quiet, under `root`."""
    return ["fit", "--config", str(ROOT / "configs/quickstart.yaml"),
            "--data.init_args.data_dir", str(data_dir), "--data.init_args.val_split", "64",
            "--data.init_args.batch_size", "32", "--data.init_args.download", "false",
            "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.log_every_n_steps", "2", *extra]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes under `root`, to show that a refused command changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def error_line(capsys, call) -> str:
    """Run `call`, expect exit 2 and exactly one error line on stderr; return the message."""
    with pytest.raises(SystemExit) as info:
        call()
    err = capsys.readouterr().err
    assert info.value.code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0][len(ERROR_PREFIX):]


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ends_within(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for process `pid` to end; True if it did."""
    import time

    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not process_alive(pid)
