"""Every value that decides what is trained names its own run; the others do not.

The names come from `lightning sweep`'s plan, which computes them with the CLI's own parser and run
naming, exactly as `lightning fit` would: one arm per changed value, each against the quickstart as it
is. A value that decides the result sharing a run name would let a relaunch resume, or refuse as
finished, a run trained with other values."""
import pytest
import yaml

from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep

pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd

# The quickstart trains with onecycle Adam, gn_plus_gn_first (G = 4), batch 128, 8 epochs, seed 0.
DECIDES_THE_RESULT = [
    {"trainer.gradient_clip_val": [1.0]},
    {"trainer.gradient_clip_val, trainer.gradient_clip_algorithm": [[1.0, "value"]]},
    {"trainer.accumulate_grad_batches": [2]},
    {"trainer.precision": ["bf16-mixed"]},
    {"trainer.max_epochs": [3]},
    {"trainer.max_steps": [100]},
    {"trainer.limit_train_batches": [5]},
    {"trainer.sync_batchnorm": [True]},
    {"seed_everything": [1]},
    {"model.lr": [0.01]},
    {"model.optimizer": ["adamw"]},
    {"model.weight_decay": [0.0001]},
    {"model.betas": [[0.8, 0.99]]},
    {"model.schedule": ["cosine"]},
    {"model.norm": ["bn"]},
    {"model.norm_groups": [2]},
    {"model.norm_options": [{"lambda_init": 0.0}]},
    {"model.lambda_lr_scale": [2.0]},
    {"model.lambda_max_step": [0.1]},
    {"model.backbone": ["vgg11"]},
    {"data.class_path": ["datamodules.MNISTDataModule"]},
    {"data.init_args.batch_size": [64]},
    {"data.init_args.val_split": [1000]},
    {"data.init_args.split_seed": [1]},
    {"data.init_args.drop_last": [False]},
    {"data.init_args.crop_padding": [2]},
    {"data.init_args.horizontal_flip": [True]},
    {"data.init_args.seed": [3]},
]
# Where the files come from, how fast they load, what is logged: the same training.
LEAVES_IT_ALONE = [
    {"data.init_args.num_workers": [2]},
    {"data.init_args.data_dir": ["/elsewhere/fashion-mnist"]},
    {"data.init_args.pin_memory": [True]},
    {"trainer.log_every_n_steps": [5]},
    {"trainer.enable_progress_bar": [False]},
    {"lambda_tracker.init_args.every_n_steps": [5]},
]


def planned(tmp_path, arms):
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump({"config": "configs/quickstart.yaml",
                                    "args": {"trainer.default_root_dir": str(tmp_path / "runs")},
                                    "grid": [{}, *arms]}))  # {}: the quickstart as it is
    return plan_sweep(load_sweep(path))


def test_every_value_that_decides_the_result_names_its_own_run(tmp_path):
    runs = planned(tmp_path, DECIDES_THE_RESULT)
    named_alike = len(DECIDES_THE_RESULT) + 1 - len(runs)  # the plan runs each directory once
    same_as_base = [run.point for run in runs[1:] if run.run_dir == runs[0].run_dir]
    assert named_alike == 0 and not same_as_base, [
        arm for arm in DECIDES_THE_RESULT if not any(set(run.point) == set(_keys(arm)) for run in runs)]
    assert len({run.run_dir.name for run in runs}) == len(runs)


def test_paths_workers_and_logging_do_not_change_the_run(tmp_path, capsys):
    runs = planned(tmp_path, LEAVES_IT_ALONE)
    assert len(runs) == 1 and runs[0].point == {}
    assert f"{len(LEAVES_IT_ALONE)} grid point(s) name a run directory already planned" in capsys.readouterr().err


def _keys(arm: dict) -> list[str]:
    (key,) = arm
    return [k.strip() for k in key.split(",")]
