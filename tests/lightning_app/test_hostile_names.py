"""Names from others (a sweep file's grid, a shared config) never become shell lines, and a name the file
system cannot hold is one line, not a traceback.

The SLURM script is rendered with hostile names (quotes, `$(...)`, backquotes, `;`, spaces, `#`) in the
experiment, the run names and the runs root, checked with `bash -n`, and run once per array task with a
stand-in `srun` on PATH that records its argv: each task must hand exactly its run's arguments to srun,
and no injected command may run. A name with a newline (which would end the comment it is written in
and start a command) is refused before anything is written.
"""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_app.command import main
from lightning_app.run.paths import check_name
from lightning_app.sweep.command import main as sweep_main
from lightning_app.sweep.export import ClusterNodes, slurm_script, wandb_sweep
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import error_line, snapshot, tiny_args

pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd

INJECTION = "a\nesac\necho INJECTED\ncase x in\n#"  # the issue's run_name: breaks out of a comment line


@pytest.mark.parametrize("name,shown", [("a\nb", r"'a\nb'"), ("tab\there", r"'tab\there'"),
                                        ("esc\x1b[2J", r"'esc\x1b[2J'"), ("del\x7f", r"'del\x7f'"),
                                        ("nel\x85", r"'nel\x85'")])
def test_a_name_with_a_control_character_is_refused(name, shown):
    with pytest.raises(ValueError) as info:
        check_name("run_name", name)
    assert str(info.value).startswith(f"run_name={shown} holds a control character")


def test_a_name_over_the_file_systems_limit_is_refused_in_bytes_not_characters(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    fits = "λ" * (limit // 2)  # 2 bytes each in UTF-8
    assert check_name("run_name", fits, tmp_path) == fits
    (tmp_path / fits).mkdir()  # the file system agrees
    with pytest.raises(ValueError, match=f"is {2 * (limit // 2 + 1)} bytes in UTF-8.*at most {limit} bytes"):
        check_name("run_name", fits + "λ", tmp_path)
    with pytest.raises(OSError):  # what the name would have met
        (tmp_path / (fits + "λ")).mkdir()


@pytest.mark.parametrize("option", ["--run_name", "--experiment"])
def test_fit_with_a_name_too_long_is_one_line_and_creates_nothing(fake_mnist_dir, tmp_path, capsys, option):
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, option, "λ" * 200)))
    assert f"{option[2:]}='λλλλλλλλλλλλλλλλλλλλ…' (200 characters) is 400 bytes in UTF-8" in message
    assert not root.exists()


def test_a_root_with_a_control_character_is_refused(fake_mnist_dir, tmp_path, capsys):
    root = tmp_path / "runs\nx"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root)))
    assert message.startswith(f"trainer.default_root_dir={str(root)!r} holds a control character")
    assert not root.exists()


def make_sweep(folder: Path, grid: str, extra: str = "", name: str = "tiny", root: Path | None = None) -> Path:
    path = folder / f"{name}.yaml"
    root = yaml.safe_dump(str(root or folder / "runs"), width=1 << 20).splitlines()[0]
    path.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {root}}}\ngrid:\n{grid}{extra}")
    return path


@pytest.mark.parametrize("launcher", ["slurm", "wandb", "local"])
def test_the_issues_injected_run_name_is_refused_before_anything_is_written(tmp_path, capsys, launcher):
    sweep = make_sweep(tmp_path, f"  run_name: [ok, {json.dumps(INJECTION)}]\n")  # JSON: a YAML flow scalar
    assert yaml.safe_load(sweep.read_text())["grid"]["run_name"][1] == INJECTION  # the file holds the newline
    before = snapshot(tmp_path)
    message = error_line(capsys, lambda: sweep_main(["--config", str(sweep), "--launcher", launcher]))
    assert r"run_name='a\nesac\necho INJECTED\ncase x in\n#' holds a control character" in message
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


# Run names that a shell would execute something from, were they not quoted (each touches ./INJECTED).
HOSTILE_NAMES = ["$(touch INJECTED)", "`touch INJECTED`", "x'; touch INJECTED; '", 'q"; touch INJECTED; "',
                 "sp ace", "semi;colon", "hash #not-a-comment"]


def test_a_slurm_script_of_hostile_names_hands_srun_exactly_each_runs_arguments(tmp_path):
    folder = tmp_path / "sweeps $(touch INJECTED) it's"
    folder.mkdir()
    names = HOSTILE_NAMES
    grid = "  run_name: " + yaml.safe_dump(names, default_flow_style=True, width=1 << 20)
    sweep = make_sweep(folder, grid, "slurm: {time: '01:00:00', partition: \"gpu'; touch INJECTED #\"}\n",
                       name="exp $(touch INJECTED) 'q'")
    spec = load_sweep(sweep)
    runs = plan_sweep(spec)
    assert [run.run_dir.name for run in runs] == names
    script = slurm_script(spec, runs, runs[0].run_dir.parent / "_sweep" / "slurm", ClusterNodes(cpus=8, gpus=0))
    script_path = tmp_path / "job.sbatch"
    script_path.write_text(script)
    assert subprocess.run(["bash", "-n", str(script_path)], capture_output=True).returncode == 0
    # sbatch reads each #SBATCH line with quotes as in a shell: every directive is one quoted word
    directives = [shlex.split(line.split(" ", 1)[1]) for line in script.splitlines() if line.startswith("#SBATCH")]
    assert all(len(words) == 1 for words in directives), directives
    assert ["--job-name=normlab-exp $(touch INJECTED) 'q'"] in directives
    assert ["--partition=gpu'; touch INJECTED #"] in directives
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text('#!/bin/bash\nprintf "%s\\0" "$@"\n')
    (fake_bin / "srun").chmod(0o755)
    for task, run in enumerate(runs):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", str(script_path)], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\0")[:-1] == ["--kill-on-bad-exit=1", sys.executable, "-m", "lightning_app",
                                                  "fit", *run.args]
        assert result.stderr == ""
    assert not list(tmp_path.rglob("INJECTED"))


def test_a_slurm_setting_with_a_newline_is_refused(tmp_path, capsys):
    sweep = make_sweep(tmp_path, "  model.norm: [bn]\n", 'slurm: {time: "01:00:00\\necho INJECTED"}\n')
    message = error_line(capsys, lambda: sweep_main(["--config", str(sweep), "--launcher", "slurm"]))
    assert message.startswith(r"sweep 'slurm' section: time='01:00:00\necho INJECTED' holds a control character")


def test_the_wandb_sweep_file_reads_back_every_hostile_name_as_given(tmp_path):
    names = HOSTILE_NAMES
    sweep = make_sweep(tmp_path, "  run_name: " + yaml.safe_dump(names, default_flow_style=True, width=1 << 20),
                       "wandb: {project: \"p: 'x' #y\"}\n", name="exp #1: 'q'")
    spec = load_sweep(sweep)
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", [])
    written = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))
    assert written == config and written["project"] == "p: 'x' #y" and written["name"] == "exp #1: 'q'"
    (files,) = written["parameters"].values()  # names W&B's `--key=value` would not keep: per-run override files
    assert [yaml.safe_load(Path(f).read_text())["run_name"] for f in files["values"]] == names
    assert written["command"][written["command"].index("--experiment") + 1] == "exp #1: 'q'"


def test_the_wandb_sweep_file_header_cannot_be_broken_by_the_sweep_path(tmp_path, capsys):
    folder = tmp_path / "sweeps\nproject: stolen"
    folder.mkdir()
    sweep = make_sweep(folder, "  model.norm: [bn, gn]\n", name="w", root=tmp_path / "runs")
    with pytest.raises(SystemExit) as info:
        sweep_main(["--config", str(sweep), "--launcher", "wandb"])
    assert info.value.code == 0, capsys.readouterr().err
    written = (tmp_path / "runs" / "w" / "_sweep" / "wandb_sweep.yaml").read_text()
    assert all(line.startswith("#") for line in written.splitlines()[:1])
    assert "project" not in yaml.safe_load(written)


@pytest.mark.parametrize("key,value", [("project", "a\nb"), ("group", "g\x1b"), ("tags", ["ok", "t\r"])])
def test_a_wandb_name_with_a_control_character_is_refused(fake_mnist_dir, tmp_path, capsys, key, value):
    root = tmp_path / "runs"
    wandb = yaml.safe_dump({key: value}, default_flow_style=True, width=1 << 20).strip()
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, "--wandb", wandb)))
    assert f"wandb.{key}=" in message and "holds a control character" in message
    assert not root.exists()


def test_the_eval_directory_of_a_long_checkpoint_name_fits_the_file_system(tmp_path):
    from lightning_app.run.evaluation import new_eval_dir

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    made = new_eval_dir(tmp_path, "test", str(tmp_path / ("c" * (limit - 5) + ".ckpt")))
    assert made.is_dir() and len(made.name.encode()) <= limit and made.name.startswith("test-ccc")


def test_names_pass_unchanged_through_root_and_run_directory(fake_mnist_dir, tmp_path):
    """Quotes, `$`, `;` and spaces are legal in a directory name: they are kept, and never interpreted."""
    root = tmp_path / "runs $(x) 'q'"
    main(tiny_args(fake_mnist_dir, root, "--run_name", "it's $(x); ok", "--trainer.max_epochs", "1",
                   "--test_after_fit", "false", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"))
    assert (root / "quickstart" / "it's $(x); ok" / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fake_mnist", "runs $(x) 'q'"])
