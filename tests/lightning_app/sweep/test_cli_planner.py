"""The sweep planner parses each planned run's arguments with NormlabCLI's parser inside `lightning sweep`,
whose own command line is not empty: Lightning's warning about `args` beside `sys.argv` would print once
per planned run. The planner silences that warning only; any other warning of the parse still shows."""
import sys
import warnings

import pytest

from lightning_app import cli
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import ROOT

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


@pytest.mark.parametrize("lines,message", [
    # 2**53 + 1 reaches the float-typed learning rate as 2**53: a run of another value than the file's
    ("args: {trainer.default_root_dir: RUNS}\ngrid:\n  model.lr: [9007199254740993]\n",
     "sweep run (model.lr=9007199254740993): model.lr was given 9007199254740993 but the CLI parsed "
     "9007199254740992.0"),
    ("args: {trainer.default_root_dir: RUNS, seed_everything: true}\ngrid:\n  model.norm: [bn]\n",
     "sweep run (model.norm=bn): seed_everything=True gives no reproducible run name; set an integer, or list "
     "them under 'seeds'"),
])
def test_a_run_the_cli_would_not_name_as_the_file_says_is_refused(tmp_path, lines, message):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text("config: configs/quickstart.yaml\n" + lines.replace("RUNS", str(tmp_path / "runs")))
    with pytest.raises(ValueError) as info:
        plan_sweep(load_sweep(sweep))
    assert str(info.value) == message


def test_each_run_carries_its_own_accelerator_and_devices(tmp_path):
    """What a launcher must provide: the run's parsed trainer.accelerator and trainer.devices."""
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                     "grid:\n  model.norm, trainer.accelerator, trainer.devices: [[bn, auto, 1], [gn, cpu, 3]]\n")
    assert [(run.accelerator, run.devices) for run in plan_sweep(load_sweep(sweep))] == [("auto", "1"), ("cpu", "3")]


def test_a_config_without_an_accelerator_is_planned_as_auto(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text((ROOT / "configs/quickstart.yaml").read_text().replace("accelerator: auto", "accelerator: null"))
    assert "accelerator: null" in base.read_text()
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"config: {base}\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n")
    assert [run.accelerator for run in plan_sweep(load_sweep(sweep))] == ["auto"]
