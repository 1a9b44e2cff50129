"""Every experiment config prints (`--print_config`) and instantiates its model, data module and
callbacks without training, with the values the file declares; every sweep file plans all its runs."""

import pytest
import yaml

from lightning_app.cli import NormlabCLI
from lightning_app.command import main
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from models.norms import make_norm
from tests.helpers import ROOT

EXPERIMENTS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
CALLBACK_SECTIONS = ("landscape", "lambda_tracker", "explosion")


pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd


def test_there_is_a_config_for_every_paper_experiment():
    assert len(EXPERIMENTS) >= 9 and len(SWEEPS) >= 9


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_config_prints_and_instantiates(path, tmp_path, capsys):
    declared = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# "), "every experiment config starts with its header comment"
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(path), "--print_config"])
    assert info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    for key, value in declared["model"].items():
        assert printed["model"][key] == value, key
    assert printed["data"]["class_path"] == declared["data"]["class_path"]

    cli = NormlabCLI(args=["--config", str(path), "--trainer.default_root_dir", str(tmp_path),
                           "--data.init_args.download", "false"], run=False)
    model = declared["model"]
    for key, value in model.items():
        assert cli.model.hparams[key] == value, key
    reference = make_norm(model["norm"], 64, model.get("norm_groups", 32), **(model.get("norm_options") or {}))
    assert type(reference) in {type(m) for m in cli.model.modules()}, "the norm layers are the declared norm"
    assert type(cli.datamodule).__name__ == declared["data"]["class_path"].rsplit(".", 1)[1]
    assert cli.datamodule.batch_size == declared["data"]["init_args"]["batch_size"]
    assert cli.datamodule.val_split == declared["data"]["init_args"]["val_split"]
    for section in CALLBACK_SECTIONS:
        if section in declared:
            callback = cli.config_init[section]
            assert type(callback).__name__ == declared[section]["class_path"].rsplit(".", 1)[1]


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_sweep_plans_all_its_runs(path, tmp_path):
    spec = load_sweep(path)
    runs = plan_sweep(spec, ["--trainer.default_root_dir", str(tmp_path)])
    assert len(runs) == len(spec.points())  # no two grid points collapse into one run
    assert all(run.run_dir.parent == tmp_path / spec.experiment for run in runs)
