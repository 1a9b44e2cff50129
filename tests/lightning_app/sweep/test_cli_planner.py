"""The sweep planner parses each planned run's arguments with NormlabCLI's parser inside `lightning sweep`,
whose own command line is not empty: Lightning's warning about `args` beside `sys.argv` would print once
per planned run. The planner silences that warning only; any other warning of the parse still shows."""
import sys
import warnings

import pytest

from lightning_app import cli
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep

pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd


def plan_warnings(tmp_path, monkeypatch) -> list[str]:
    """Plan a two-run sweep with `lightning sweep`'s own command line in sys.argv; the warnings given."""
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                     "grid:\n  model.norm: [bn, gn]\n")
    monkeypatch.setattr(sys, "argv", ["lightning", "sweep", "--config", str(sweep), "--dry-run"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = plan_sweep(load_sweep(str(sweep)))
    assert len(runs) == 2
    return [str(w.message) for w in caught]


def test_planning_gives_no_warning_about_args_beside_the_command_line(tmp_path, monkeypatch):
    messages = plan_warnings(tmp_path, monkeypatch)
    assert not [m for m in messages if "args parameter" in m], messages


def test_another_warning_of_the_parse_still_shows(tmp_path, monkeypatch):
    check_yaml_files = cli.check_yaml_files

    def warns(argv):  # runs inside the planner's parse, where the Lightning warning is silenced
        warnings.warn("a real problem with the config", UserWarning)
        return check_yaml_files(argv)

    monkeypatch.setattr(cli, "check_yaml_files", warns)
    messages = plan_warnings(tmp_path, monkeypatch)
    assert messages.count("a real problem with the config") >= 2, messages  # at least once per planned run
