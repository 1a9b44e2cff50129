"""`lightning --help`, `lightning sweep` (its help, a plan already named) and `lightning report` import
neither torch nor Lightning: each is a real `python -m lightning_app` process whose modules are listed
when it ends. A training subcommand does import them (the check can fail)."""
import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.lightning_app.report.report_runs import write_run

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "torchmetrics", "matplotlib.backends.backend_qt")
# Runs the command in-process, then prints which of HEAVY it imported, whatever way the command ended.
PROBE = ("import json, sys\nfrom lightning_app.command import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
         f"    print('HEAVY=' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")


def run(*args) -> tuple[list[str], str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    lines = result.stdout.splitlines()
    heavy = json.loads(next(line for line in lines if line.startswith("HEAVY="))[len("HEAVY="):])
    return heavy, "\n".join(line for line in lines if not line.startswith("HEAVY="))


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["report", "--help"], ["sweep", "--help"]])
def test_help_imports_neither_torch_nor_lightning(args):
    heavy, output = run(*args)
    assert heavy == [] and "usage" in output


def test_a_report_on_a_runs_folder_imports_neither(tmp_path):
    for norm, seed in (("bn", 0), ("gn", 0), ("gn_plus_gn_first", 1)):
        write_run(tmp_path / "runs", norm, 8, seed, "completed", 0.9)
    heavy, output = run("report", str(tmp_path / "runs"))
    assert heavy == [] and "normlab: report" in output and (tmp_path / "runs" / "report" / "report.md").is_file()


def test_a_plan_already_named_imports_neither_and_names_the_runs_the_same(tmp_path):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                     "grid:\n  model.norm: [bn, gn]\n")
    first_heavy, first = run("sweep", "--config", str(sweep), "--dry-run")
    second_heavy, second = run("sweep", "--config", str(sweep), "--dry-run")
    assert "torch" in first_heavy  # the first plan asks the CLI's parser
    assert second_heavy == [] and second == first and "2 runs" in first


def test_a_training_subcommand_does_import_them():
    heavy, output = run("fit", "--help")
    assert {"torch", "pytorch_lightning"} <= set(heavy) and "--model.norm" in output
