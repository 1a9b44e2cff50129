"""`lightning`: normlab's LightningCLI.

    lightning fit --config configs/quickstart.yaml [--config configs/presets/X.yaml] [--model.norm gn]
    lightning sweep --config configs/sweeps/X.yaml [--launcher local|slurm|wandb] [--dry-run]
    lightning report RUNS_DIR [--out DIR]

What it adds to LightningCLI:
- the data module's `num_classes`, `in_channels`, `image_size` are linked into the model;
- every run gets its own directory `<default_root_dir>/<experiment>/<run_name>/` (`run_dir.py`) with
  `config.yaml` (the resolved config), `metrics.csv` (CSV logger, always on), `checkpoints/last.ckpt`
  and `summary.json`; a completed run is never overwritten without `--overwrite true`, and an
  interrupted one resumes from its `last.ckpt` when relaunched (saved every `checkpoint_every_n_steps`
  steps and at every epoch end, written atomically: `checkpoints.py`);
- `fit` ends with a test on the official test split (`--test_after_fit false` to skip) and one line
  with the run directory and the test accuracy;
- bad input is one line on stderr and exit code 2 (`NORMLAB_DEBUG=1` shows the traceback): parse
  errors are translated by `bad_input.py`, and the checks that need the built objects (batch size vs.
  devices and norm, the checkpoint to resume) run before anything is written.
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import yaml
from jsonargparse import ArgumentError
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from callbacks.explosion import ExplosionDetector
from callbacks.hessian import HessianTopEigen
from callbacks.lambda_tracker import LambdaTracker
from callbacks.landscape import LandscapeProbe
from callbacks.rng_state import RNGState
from callbacks.run_files import read_json
from callbacks.run_summary import SUMMARY_FILE, RunSummary
from datamodules import ImageDataModule
from lightning_app.bad_input import (CORRUPT_FILE_ERRORS, check_yaml_files, corrupt_file_message,
                                     explain_parse_error)
from lightning_app.checkpoints import (AtomicCheckpointIO, LastCheckpoint, check_checkpoint,
                                       load_checkpoint_file)
from lightning_app.run_dir import default_experiment, derive_run_name
from lightning_app.run_metrics import RunMetricsLogger
from lightning_app.wandb_logger import WandbOptions, finish_wandb, make_wandb_logger
from models.classifier import ImageClassifier
from models.norms.sync import NormlabSyncBatchNorm

FINISHED = ("completed", "exploded")
# Optional callbacks a preset switches on through a top-level key of its own, so that presets compose
# (a list under trainer.callbacks would be replaced, not merged, by a second --config).
CALLBACK_KEYS: dict[str, type] = {
    "landscape": LandscapeProbe,
    "hessian": HessianTopEigen,
    "explosion": ExplosionDetector,
    "lambda_tracker": LambdaTracker,
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
    def init_parser(self, **kwargs) -> LightningArgumentParser:
        return super().init_parser(exit_on_error=False, **kwargs)  # parse_arguments makes the one line

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        argv = list(sys.argv[1:] if args is None else args)
        check_yaml_files(argv)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            subcommands = getattr(parser, "_subcommands_action", None)
            parsers = subcommands._name_parser_map if subcommands is not None else {}
            subparser = next((parsers[a] for a in argv if a in parsers), parser)
            raise ValueError(explain_parse_error(str(error), subparser)) from None

    def _parse_ckpt_path(self) -> None:
        """An unreadable checkpoint is one clear line. LightningCLI also replaces the model config by the
        checkpoint's hyper-parameters: kept for evaluating a checkpoint, but `fit` trains what the config
        says (it names the run directory); `_check_ckpt_path` refuses a checkpoint that does not fit."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():
            load_checkpoint_file(path)
        if subcommand != "fit":
            super()._parse_ckpt_path()

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
        parser.add_argument("--wandb", type=WandbOptions | None, default=None,
                            help="Also log to Weights & Biases (configs/presets/wandb.yaml); null: off.")
        parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=500,
                            help="Also save checkpoints/last.ckpt every N training steps, so a killed run "
                                 "resumes mid-epoch (null: at epoch ends only).")
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
            cfg.run_name = derive_run_name(self._dumped_config(cfg))
        self.run_dir = Path(cfg.trainer.default_root_dir or "runs") / cfg.experiment / cfg.run_name
        if self.subcommand == "fit":
            self._check_run_dir(cfg)

    def _check_run_dir(self, cfg) -> None:
        summary_path = self.run_dir / SUMMARY_FILE
        status = read_json(summary_path).get("status") if summary_path.is_file() else None
        if status in FINISHED and not cfg.overwrite:
            raise ValueError(f"{self.run_dir} already holds a {status} run; pass --overwrite true to replace it, "
                             "or set --run_name / --experiment to write elsewhere")
        # The newest of last.ckpt and Lightning's SLURM requeue checkpoints (saved on SIGUSR1 in the run
        # directory, the Trainer's root): a requeued job continues from the moment it was signalled.
        candidates = [p for p in (self.run_dir / "checkpoints" / "last.ckpt", *self.run_dir.glob("hpc_ckpt_*.ckpt"))
                      if p.is_file()]
        newest = max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)
        # Auto-resume is decided here but passed to fit only (before_fit): config.yaml keeps ckpt_path null.
        resumable = status not in FINISHED and cfg.ckpt_path is None and newest is not None
        self._resume_from = str(newest) if resumable else None

    def _dumped_config(self, cfg) -> dict:
        return yaml.safe_load(self._parser(self.subcommand).dump(cfg, skip_none=False, skip_validation=True))

    def _get_subcommand_config(self, config):
        return config[self.subcommand] if self.subcommand else config

    def before_fit(self) -> None:
        cfg = self.config_init[self.subcommand]
        self._check_batch_size()
        if self._resume_from is not None and not cfg.overwrite:
            print(f"normlab: resuming the interrupted run in {self.run_dir} from {self._resume_from}",
                  file=sys.stderr)
            cfg.ckpt_path = self._resume_from
        if type(self.datamodule).state_dict is not LightningDataModule.state_dict:
            # The data module restores its place in the epoch's batch order itself; Lightning only looks
            # at the DataLoader and would warn that a mid-epoch resume is unreliable.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        self._check_ckpt_path(cfg)
        if cfg.overwrite and self.run_dir.is_dir() and cfg.ckpt_path is None:
            shutil.rmtree(self.run_dir)  # only now: every check and instantiation has passed

    def before_validate(self) -> None:
        self._check_ckpt_path(self.config_init[self.subcommand])

    before_test = before_predict = before_validate

    # -- checks that need the built objects, before anything is written ----------------------------
    def _check_ckpt_path(self, cfg) -> None:
        path = cfg.get("ckpt_path")
        if path == "last":  # Lightning finds it in the run's checkpoints/ folder; check that file
            path = self.run_dir / "checkpoints" / "last.ckpt"
            path = path if path.is_file() else None
        if path is not None and path not in ("best", "hpc", "registry"):
            check_checkpoint(path, self.model)

    def _check_batch_size(self) -> None:
        if not isinstance(self.datamodule, ImageDataModule):
            return
        self.datamodule.trainer = self.trainer  # what fit does first; the data module splits the batch by it
        per_device = self.datamodule.per_device_batch_size  # refuses a batch the devices do not divide
        self.model.check_batch_size(per_device, f"data.batch_size={self.datamodule.batch_size}")

    # -- trainer -----------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs) -> Trainer:
        cfg = self._get_subcommand_config(self.config_init)
        trainer_cfg = dict(self._get(self.config_init, "trainer", default={}))
        user_loggers = trainer_cfg.get("logger")
        user_loggers = [user_loggers] if isinstance(user_loggers, Logger) else [
            lg for lg in (user_loggers if isinstance(user_loggers, (list, tuple)) else []) if isinstance(lg, Logger)]
        csv = RunMetricsLogger(save_dir=str(self.run_dir.parent.parent), name=cfg.experiment, version=cfg.run_name)
        callbacks = [c for c in (self._get(self.config_init, k) for k in self._parser(self.subcommand).callback_keys)
                     if c is not None]
        callbacks += [RunSummary(), RNGState()]
        if trainer_cfg.get("enable_checkpointing", True) is not False:
            dirpath = str(self.run_dir / "checkpoints")
            callbacks.append(LastCheckpoint(dirpath, cfg.get("checkpoint_every_n_steps") or 0))
            if cfg.save_best:
                callbacks.append(ModelCheckpoint(dirpath=dirpath, filename="best", monitor="val/acc", mode="max",
                                                 save_top_k=1, enable_version_counter=False))
        if trainer_cfg.get("sync_batchnorm"):  # torch's SyncBatchNorm is CUDA-only; this one also runs on gloo
            plugins = trainer_cfg.get("plugins") or []
            trainer_cfg["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), NormlabSyncBatchNorm()]
        wandb = make_wandb_logger(cfg.get("wandb"), self._dumped_config(self._get_subcommand_config(self.config)),
                                  cfg.experiment, cfg.run_name, self.run_dir)
        # The Trainer's own root is the run directory, so Lightning's SLURM requeue checkpoints
        # (hpc_ckpt_*.ckpt) land in, and resume from, this run's directory and no other.
        trainer_cfg.update(kwargs, logger=[csv, *([wandb] if wandb else []), *user_loggers],
                           default_root_dir=str(self.run_dir))
        trainer = self._instantiate_trainer(trainer_cfg, callbacks)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own plugin is left alone
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

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
        finish_wandb(self.trainer, summary.summary if summary is not None else None)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] in ("sweep", "report"):
            import importlib

            importlib.import_module(f"lightning_app.{argv[0]}").main(argv[1:])
            return
        NormlabCLI(args=argv if args is not None else None)
    except (ValueError, FileNotFoundError, MisconfigurationException, *CORRUPT_FILE_ERRORS) as error:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        # one line, whatever the raiser (jsonargparse, a file reader) formatted
        corrupt = isinstance(error, CORRUPT_FILE_ERRORS)
        message = corrupt_file_message(error) if corrupt else explain_parse_error(str(error))
        print(f"normlab: error: {message}", file=sys.stderr)
        sys.exit(2)
