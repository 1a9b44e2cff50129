"""`lightning sweep`'s command line run in the test process: what it hands the planner and the local
launcher, and its exit status. (The end-to-end test runs the same command with real trainings.)"""
import pytest
import yaml

from lightning_app.sweep import command
from lightning_app.sweep.export import wandb_sweep
from lightning_app.sweep.command import main
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import error_line

pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd

CLIP = ["--trainer.gradient_clip_val", "0.5"]


def make_sweep(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                    "grid:\n  model.norm: [bn, gn]\n")
    return path


@pytest.fixture
def nothing_trains_here(monkeypatch):
    """A command that should train nothing fails at once instead of training for minutes."""
    def run_local(*args):
        raise AssertionError("the command started the local launcher")

    monkeypatch.setattr(command, "run_local", run_local)


def exit_code(argv) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.mark.usefixtures("nothing_trains_here")
def test_a_dry_run_plans_with_the_arguments_after_the_dashes_and_writes_nothing(tmp_path, capsys):
    sweep = make_sweep(tmp_path)
    assert exit_code(["--config", str(sweep), "--dry-run", "--", *CLIP]) == 0
    printed = [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]]
    with_clip = [run.run_dir.name for run in plan_sweep(load_sweep(sweep), CLIP)]
    assert printed == with_clip
    assert set(with_clip).isdisjoint(run.run_dir.name for run in plan_sweep(load_sweep(sweep)))  # clipping is science
    assert not (tmp_path / "runs").exists()


def test_the_local_launcher_gets_the_plan_the_parallelism_and_the_sweeps_log_folder(tmp_path, monkeypatch):
    calls = []

    def run_local(runs, parallel, log_dir):
        calls.append(([run.args for run in runs], parallel, log_dir))
        return 3  # the launcher's status is the command's

    monkeypatch.setattr(command, "run_local", run_local)
    sweep = make_sweep(tmp_path)
    assert exit_code(["--config", str(sweep), "--parallel", "2", "--", *CLIP]) == 3
    runs = plan_sweep(load_sweep(sweep), CLIP)
    assert calls == [([run.args for run in runs], 2, tmp_path / "runs" / "tiny" / "_sweep" / "logs")]


@pytest.mark.usefixtures("nothing_trains_here")
def test_the_wandb_launcher_writes_the_sweep_file_of_the_plan_with_the_arguments_after_the_dashes(tmp_path, capsys):
    sweep = make_sweep(tmp_path)
    assert exit_code(["--config", str(sweep), "--launcher", "wandb", "--", *CLIP]) == 0
    sweep_dir = tmp_path / "runs" / "tiny" / "_sweep"
    written = yaml.safe_load((sweep_dir / "wandb_sweep.yaml").read_text())
    spec = load_sweep(sweep)
    assert written == wandb_sweep(spec, plan_sweep(spec, CLIP), sweep_dir, CLIP)
    assert f"sweep: wrote {sweep_dir / 'wandb_sweep.yaml'}" in capsys.readouterr().out


HELP = """\
usage: lightning sweep --config CONFIG [--launcher {local,slurm,wandb}]
                       [--dry-run] [--parallel PARALLEL]

Expand a sweep file into runs and run those not finished.

options:
  -h, --help            Show this help message and exit.
  --config CONFIG       the sweep file (configs/sweeps/*.yaml) (required,
                        type: str)
  --launcher {local,slurm,wandb}
                        local: run here; slurm: a job array (submitted when
                        sbatch exists); wandb: a W&B sweep file (type:
                        Literal['local', 'slurm', 'wandb'], default: local)
  --dry-run             print the plan and stop (default: False)
  --parallel PARALLEL   local launcher: runs at once, each pinned to its own
                        visible GPU when there are GPUs; without GPUs they
                        share the CPU (type: int, default: 1)

Arguments after `--` are appended to every run, e.g. `-- --trainer.max_epochs
1`.
"""


def test_the_help_names_every_option_its_meaning_and_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal's width
    assert exit_code(["--help"]) == 0
    assert capsys.readouterr().out == HELP


def test_normlab_debug_shows_the_error_itself_instead_of_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_DEBUG", "1")
    with pytest.raises(ValueError, match=r"^--parallel must be >= 1, got 0$"):
        main(["--config", str(make_sweep(tmp_path)), "--parallel", "0"])


def test_a_sweep_file_that_is_no_yaml_is_one_line(tmp_path, capsys):
    sweep = tmp_path / "broken.yaml"
    sweep.write_text("config: [configs/quickstart.yaml\n")
    assert error_line(capsys, lambda: main(["--config", str(sweep), "--dry-run"])) == (
        f"{sweep}: YAML syntax error at line 2, column 1: expected ',' or ']', but got '<stream end>'")
