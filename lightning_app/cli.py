"""`lightning`: normlab's LightningCLI.

    lightning fit --config configs/quickstart.yaml [--config configs/presets/X.yaml] [--model.norm gn]
    lightning sweep --config configs/sweeps/X.yaml [--launcher local|slurm|wandb] [--dry-run]
    lightning report RUNS_DIR [--out DIR]

What it adds to LightningCLI:
- the data module's `num_classes`, `in_channels`, `image_size` are linked into the model;
- every run gets its own directory `<default_root_dir>/<experiment>/<run_name>/` (`run_dir.py`) with
  `config.yaml` (the resolved config), `metrics.csv` (CSV logger, always on), `checkpoints/last.ckpt`
  and `summary.json`; a completed run is never overwritten without `--overwrite true`, and an
  interrupted one resumes from its `last.ckpt` when relaunched;
- `fit` ends with a test on the official test split (`--test_after_fit false` to skip) and one line
  with the run directory and the test accuracy;
- bad input is one line on stderr and exit code 2 (`NORMLAB_DEBUG=1` shows the traceback).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from callbacks.hessian import HessianTopEigen
from callbacks.landscape import LandscapeProbe
from callbacks.run_files import read_json
from callbacks.run_summary import SUMMARY_FILE, RunSummary
from datamodules import ImageDataModule
from lightning_app.run_dir import default_experiment, derive_run_name
from models.classifier import ImageClassifier
from models.norms.sync import NormlabSyncBatchNorm

FINISHED = ("completed", "exploded")
# Optional callbacks a preset switches on through a top-level key of its own, so that presets compose
# (a list under trainer.callbacks would be replaced, not merged, by a second --config).
CALLBACK_KEYS: dict[str, type] = {
    "landscape": LandscapeProbe,
    "hessian": HessianTopEigen,
}


class SaveRunConfig(SaveConfigCallback):
    """Saves the resolved config for `fit` only: evaluating a run must not rewrite its config."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)


class NormlabCLI(LightningCLI):
    def __init__(self, args=None, run: bool = True):
        super().__init__(
            model_class=ImageClassifier,
            datamodule_class=ImageDataModule,
            subclass_mode_data=True,
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True},  # the completed-run guard below decides instead
            trainer_defaults={"default_root_dir": "runs", "max_epochs": 10},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    # -- parser ------------------------------------------------------------------------------------
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--experiment", type=str | None, default=None,
                            help="Run directory group (default: the first config file's name).")
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="Run directory name (default: derived from the config).")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="Replace a completed run of the same name instead of refusing.")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="After fit, evaluate on the official test split.")
        parser.add_argument("--save_best", type=bool, default=False,
                            help="Also keep checkpoints/best.ckpt (highest val/acc).")
        for key in ("num_classes", "in_channels", "image_size"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}" if self.subclass_mode_model
                                  else f"model.{key}", apply_on="instantiate")
        for key, callback_class in CALLBACK_KEYS.items():
            parser.add_lightning_class_args(callback_class, key, subclass_mode=True, required=False)

    # -- run directory -----------------------------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self._get_subcommand_config(self.config)
        if not cfg.experiment:
            cfg.experiment = default_experiment(cfg.get("config") or [])
        if not cfg.run_name:
            dumped = yaml.safe_load(self._parser(self.subcommand).dump(cfg, skip_none=False, skip_validation=True))
            cfg.run_name = derive_run_name(dumped)
        self.run_dir = Path(cfg.trainer.default_root_dir or "runs") / cfg.experiment / cfg.run_name
        if self.subcommand == "fit":
            self._check_run_dir(cfg)

    def _check_run_dir(self, cfg) -> None:
        summary_path = self.run_dir / SUMMARY_FILE
        status = read_json(summary_path).get("status") if summary_path.is_file() else None
        if status in FINISHED and not cfg.overwrite:
            raise ValueError(f"{self.run_dir} already holds a {status} run; pass --overwrite true to replace it, "
                             "or set --run_name / --experiment to write elsewhere")
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if status not in FINISHED and cfg.ckpt_path is None and last.is_file():
            print(f"normlab: resuming the interrupted run in {self.run_dir} from {last}", file=sys.stderr)
            cfg.ckpt_path = str(last)

    def _get_subcommand_config(self, config):
        return config[self.subcommand] if self.subcommand else config

    def before_fit(self) -> None:
        cfg = self.config[self.subcommand]
        if cfg.overwrite and self.run_dir.is_dir() and cfg.ckpt_path is None:
            shutil.rmtree(self.run_dir)  # only now: every check and instantiation has passed

    # -- trainer -----------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs) -> Trainer:
        cfg = self._get_subcommand_config(self.config_init)
        trainer_cfg = dict(self._get(self.config_init, "trainer", default={}))
        user_loggers = trainer_cfg.get("logger")
        user_loggers = [user_loggers] if isinstance(user_loggers, Logger) else [
            lg for lg in (user_loggers if isinstance(user_loggers, (list, tuple)) else []) if isinstance(lg, Logger)]
        csv = CSVLogger(save_dir=str(self.run_dir.parent.parent), name=cfg.experiment, version=cfg.run_name)
        callbacks = [c for c in (self._get(self.config_init, k) for k in self._parser(self.subcommand).callback_keys)
                     if c is not None]
        callbacks.append(RunSummary())
        if trainer_cfg.get("enable_checkpointing", True) is not False:
            # Without save_best, last.ckpt is the one kept checkpoint: with save_top_k=0, Lightning would
            # write `last` only when training ends, leaving an interrupted run nothing to resume from.
            callbacks.append(ModelCheckpoint(
                dirpath=str(self.run_dir / "checkpoints"), filename="best" if cfg.save_best else "last",
                save_last=cfg.save_best, monitor="val/acc" if cfg.save_best else None, mode="max", save_top_k=1,
                enable_version_counter=False))
        if trainer_cfg.get("sync_batchnorm"):  # torch's SyncBatchNorm is CUDA-only; this one also runs on gloo
            plugins = trainer_cfg.get("plugins") or []
            trainer_cfg["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), NormlabSyncBatchNorm()]
        # The Trainer's own root is the run directory, so Lightning's SLURM requeue checkpoints
        # (hpc_ckpt_*.ckpt) land in, and resume from, this run's directory and no other.
        trainer_cfg.update(kwargs, logger=[csv, *user_loggers], default_root_dir=str(self.run_dir))
        return self._instantiate_trainer(trainer_cfg, callbacks)

    def after_fit(self) -> None:
        cfg = self.config_init[self.subcommand]
        summary = RunSummary.find(self.trainer)
        if cfg.test_after_fit and summary is not None and summary.summary["status"] == "completed":
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        if self.trainer.is_global_zero and summary is not None:
            s = summary.summary
            test = f"{s['test_acc']:.4f}" if s["test_acc"] is not None else "n/a"
            print(f"normlab: {s['status']} | run dir: {self.run_dir} | test/acc {test} | "
                  f"best val/acc {s['best_val_acc'] if s['best_val_acc'] is None else round(s['best_val_acc'], 4)} | "
                  f"{s['wall_seconds']:.0f} s")


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in ("sweep", "report"):
        import importlib

        importlib.import_module(f"lightning_app.{argv[0]}").main(argv[1:])
        return
    try:
        NormlabCLI(args=argv if args is not None else None)
    except (ValueError, FileNotFoundError, MisconfigurationException) as error:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        message = " ".join(str(error).split())  # one line, whatever the raiser formatted
        print(f"normlab: error: {message}", file=sys.stderr)
        sys.exit(2)
