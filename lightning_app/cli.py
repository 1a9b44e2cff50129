"""normlab's LightningCLI: `lightning fit | validate | test | predict` (lightning_app/command.py, the
`lightning` command, loads it for these subcommands only).

    lightning fit --config configs/quickstart.yaml [--config configs/presets/X.yaml] [--model.norm gn]

What it adds to LightningCLI:
- the data module's `num_classes`, `in_channels`, `image_size` are linked into the model;
- every run gets its own directory `<default_root_dir>/<experiment>/<run_name>/` with `config.yaml`
  (the resolved config), `metrics.csv` (CSV logger, always on), `checkpoints/last.ckpt` and
  `summary.json`; the contract (names, identity, lock, status, eval layout, interruptions) lives in
  `lightning_app/run/`, this file only calls it. A completed run is never overwritten without
  `--overwrite true`, and an interrupted one resumes from its newest checkpoint when relaunched (saved
  every `checkpoint_every_n_steps` steps and at every epoch end, written atomically: `checkpoints.py`);
- `validate`/`test`/`predict` write into `<run>/eval/...`, never into the fit's files;
- `fit` ends with a test on the official test split (`--test_after_fit false` to skip) and one line
  with the run directory and the test accuracy;
- bad input is one line on stderr and exit code 2 (`NORMLAB_DEBUG=1` shows the traceback): parse
  errors are translated by `bad_input.py`, and the checks that need the built objects (batch size vs.
  devices and norm, the checkpoint to resume) run before anything is written.
"""
from __future__ import annotations

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

from callbacks.activation_stats import ActivationStatistics
from callbacks.compat import subcommand_parsers, weights_in_memory
from callbacks.explosion import ExplosionDetector
from callbacks.rng_state import RNGState
from callbacks.run_summary import RunSummary
from callbacks.slurm_requeue import SlurmRequeueAtBatchEnd
from datamodules import ImageDataModule
from lightning_app.bad_input import bad_input_errors, check_yaml_files, explain_parse_error
from lightning_app.checkpoints import (AtomicCheckpointIO, LastCheckpoint, check_checkpoint,
                                       load_checkpoint_file)
from lightning_app.class_paths import restrict_class_paths
from lightning_app.run.evaluation import new_eval_dir, write_eval_summary, write_predictions
from lightning_app.run.failure import EXIT_CODE as FAILURE_EXIT_CODE, RunFailed, describe_os_error
from lightning_app.run.identity import derive_run_name
from lightning_app.run.interrupt import RunInterrupted, interruption
from lightning_app.run.launch import (check_checkpoint_origin, check_fit_target, check_run_identity, eval_run_dir,
                                      fit_resume_checkpoint, resolve_run_name, take_run_dir)
from lightning_app.run.lock import RunLock
from lightning_app.run.paths import (CHECKPOINT_DIR, check_name, check_printable, default_experiment,
                                     is_ckpt_path_keyword, resume_checkpoint, run_path)
from lightning_app.run.science import CALLBACKS
from lightning_app.run.status import UNTESTED, relaunch_status
from lightning_app.run_metrics import RunMetricsLogger
from lightning_app.wandb_logger import WandbOptions, check_usable, finish_wandb, make_wandb_logger
from lightning_app.yaml_files import DuplicateKeyError, use_in_jsonargparse
from models.classifier import ImageClassifier
from models.norms import uses_batch_statistics
from models.norms.sync import NormlabSyncBatchNorm


class SaveRunConfig(SaveConfigCallback):
    """Saves the resolved config for `fit` only: evaluating a run must not rewrite its config."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)


class NormlabCLI(LightningCLI):
    def __init__(self, args=None, run: bool = True):
        """LightningCLI's run, ending with the subcommand. A SIGTERM/SIGINT once the subcommand has begun
        (`before_<subcommand>`) becomes RunInterrupted (exit 128 + signal, one line), and the run's
        lock (taken in before_fit) is released however it ends."""
        self.run_lock: RunLock | None = None  # fit: held from before_fit to the end
        self.eval_dir: Path | None = None  # validate/test/predict: where the results go
        self.run_dir: Path | None = None
        self.subcommand_started = False
        self.final_test_running = False  # fit: inside the test after training
        self._fit_ckpt_path: str | None = None  # fit's --ckpt_path, kept from LightningCLI (parse_arguments)
        try:
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
        except (KeyboardInterrupt, SystemExit) as stop:
            interrupted = (interruption(self.eval_dir or self.run_dir, final_test=self.final_test_running)
                           if self.subcommand_started else None)
            if interrupted is None:
                raise
            raise interrupted from stop
        except OSError as error:  # a full disk, a read-only file system, ...: one line, and what the run holds
            if isinstance(error, bad_input_errors()) or not self.subcommand_started:  # main's bad-input line
                raise
            raise RunFailed(error, self.run_dir if self.subcommand == "fit" else None) from error
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    # -- parser ------------------------------------------------------------------------------------
    def init_parser(self, **kwargs) -> LightningArgumentParser:
        use_in_jsonargparse()  # a YAML key given twice is an error, wherever jsonargparse reads YAML
        restrict_class_paths()  # a class_path may not make us import any module it likes
        return super().init_parser(exit_on_error=False, **kwargs)  # parse_arguments makes the one line

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        argv = list(sys.argv[1:] if args is None else args)
        check_yaml_files(argv)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            parsers = subcommand_parsers(parser)
            subparser = next((parsers[a] for a in argv if a in parsers), parser)
            raise ValueError(explain_parse_error(str(error), subparser)) from None
        except DuplicateKeyError as error:  # in YAML jsonargparse read itself (a value, a file a config names)
            raise ValueError(str(error)) from None
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():
            load_checkpoint_file(path)  # an unreadable checkpoint is one clear line, before LightningCLI reads it
        if subcommand == "fit" and path:
            # LightningCLI next replaces the model config by the checkpoint's hyper-parameters: kept for
            # evaluating a checkpoint, but `fit` trains what the config says (it names the run directory;
            # `_check_ckpt_path` refuses a checkpoint that does not fit). So it sees no path until
            # before_instantiate_classes puts it back.
            self._fit_ckpt_path, self.config[subcommand]["ckpt_path"] = path, None

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
        for key, callback in CALLBACKS.items():  # each under a top-level key of its own (run/science.py)
            parser.add_lightning_class_args(callback.cls, key, subclass_mode=True, required=False)

    # -- run directory (the contract lives in lightning_app/run/) -----------------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self._get_subcommand_config(self.config)
        if self._fit_ckpt_path is not None:  # fit's --ckpt_path, held from LightningCLI's reading (parse_arguments)
            cfg.ckpt_path, self._fit_ckpt_path = self._fit_ckpt_path, None
        root = Path(check_printable("trainer.default_root_dir", str(cfg.trainer.default_root_dir or "runs")))
        cfg.experiment = check_name("experiment", cfg.experiment or default_experiment(cfg.get("config") or []), root)
        launched = self._dumped_config(cfg)
        if self.subcommand != "fit":
            if cfg.get("ckpt_path") == "last":  # the run's own newest checkpoint, as fit would resume
                cfg.ckpt_path = self._newest_checkpoint(run_path(root, cfg.experiment, cfg.run_name
                                                                 or derive_run_name(launched)))
            cfg.run_name = cfg.run_name or derive_run_name(launched)
            self.run_dir = eval_run_dir(root, cfg.experiment, cfg.run_name, cfg.get("ckpt_path"))
            return
        cfg.run_name = resolve_run_name(root, cfg.experiment, cfg.run_name, launched)
        self.run_dir = run_path(root, cfg.experiment, cfg.run_name)
        if cfg.ckpt_path == "last":
            cfg.ckpt_path = self._newest_checkpoint(self.run_dir)

    def instantiate_classes(self) -> None:
        wandb = self._get_subcommand_config(self.config).get("wandb")
        if self.subcommand == "fit" and wandb is not None:  # before anything is built (the sweep planner skips it)
            check_usable(WandbOptions(**wandb.as_dict()))
        super().instantiate_classes()

    @staticmethod
    def _newest_checkpoint(run_dir: Path) -> str:
        newest = resume_checkpoint(run_dir)
        if newest is None:
            raise ValueError(f"--ckpt_path last: {run_dir} holds no checkpoint (checkpoints/last.ckpt or hpc_ckpt_*.ckpt)")
        return str(newest)

    def _dumped_config(self, cfg) -> dict:
        return yaml.safe_load(self._subcommand_parser().dump(cfg, skip_none=False, skip_validation=True))

    def _subcommand_parser(self) -> LightningArgumentParser:
        return subcommand_parsers(self.parser).get(self.subcommand, self.parser)

    def _get_subcommand_config(self, config):
        return config[self.subcommand] if self.subcommand else config

    def before_fit(self) -> None:
        self.subcommand_started = True
        cfg = self.config_init[self.subcommand]
        self._check_batch_size()
        self._check_ckpt_path(cfg)
        for callback in self.trainer.callbacks:
            if isinstance(callback, ActivationStatistics):
                callback.select_layers(self.model)  # an unknown layer path is refused before the run is taken
        if isinstance(self.datamodule, ImageDataModule):
            self.datamodule.setup("fit")  # bad data files are refused before the run directory is taken (fit's
            # own setup call then finds the splits loaded)
        launched = self._dumped_config(self._get_subcommand_config(self.config))
        check_checkpoint_origin(cfg.ckpt_path, launched)
        check_run_identity(self.run_dir, launched, cfg.overwrite)
        check_fit_target(self.run_dir, cfg.overwrite, cfg.ckpt_path, cfg.test_after_fit)
        if type(self.datamodule).state_dict is not LightningDataModule.state_dict:
            # The data module restores its place in the epoch's batch order itself; Lightning only looks
            # at the DataLoader and would warn that a mid-epoch resume is unreliable.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        checked = fit_resume_checkpoint(self.run_dir, cfg.overwrite, cfg.ckpt_path, cfg.test_after_fit)
        if checked is not None:
            check_checkpoint(checked, self.model, resume=True)
        self.run_lock = take_run_dir(self.run_dir, cfg.overwrite, cfg.test_after_fit)  # every check passed: ours now
        # again, under the lock
        resume = fit_resume_checkpoint(self.run_dir, cfg.overwrite, cfg.ckpt_path, cfg.test_after_fit)
        if resume is not None:
            if resume != checked:
                check_checkpoint(resume, self.model, resume=True)
            untested = relaunch_status(self.run_dir, cfg.test_after_fit) == UNTESTED
            print(f"normlab: running the missing final test of {self.run_dir} (its training ended in {resume})"
                  if untested else f"normlab: resuming the interrupted run in {self.run_dir} from {resume}",
                  file=sys.stderr)
            cfg.ckpt_path = str(resume)  # passed to fit only: config.yaml keeps ckpt_path null

    def before_validate(self) -> None:
        self.subcommand_started = True
        self._check_ckpt_path(self.config_init[self.subcommand])
        # An evaluation leaves the fit's callbacks (summary, RNG, last.ckpt) out on purpose.
        warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used to create")

    before_test = before_predict = before_validate

    # -- checks that need the built objects, before anything is written ----------------------------
    def _check_ckpt_path(self, cfg) -> None:
        path = cfg.get("ckpt_path")
        if path is not None and not is_ckpt_path_keyword(path):
            check_checkpoint(path, self.model, resume=self.subcommand == "fit")

    def _check_batch_size(self) -> None:
        if not isinstance(self.datamodule, ImageDataModule):
            return
        self.datamodule.trainer = self.trainer  # what fit does first; the data module splits the batch by it
        per_device = self.datamodule.per_device_batch_size  # refuses a batch the devices do not divide
        norm = self.model.hparams.get("norm")
        self.datamodule.expect_norm(norm, uses_batch_statistics(norm, self.model.hparams.get("norm_options")))
        self.model.check_batch_size(per_device, f"data.batch_size={self.datamodule.batch_size}")

    # -- trainer -----------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs) -> Trainer:
        cfg = self._get_subcommand_config(self.config_init)
        trainer_cfg = dict(cfg.get("trainer") or {})
        user_loggers = trainer_cfg.get("logger")
        user_loggers = [user_loggers] if isinstance(user_loggers, Logger) else [
            lg for lg in (user_loggers if isinstance(user_loggers, (list, tuple)) else []) if isinstance(lg, Logger)]
        callbacks = [c for c in (cfg.get(k) for k in self._subcommand_parser().callback_keys) if c is not None]
        if self.subcommand == "fit":
            loggers, callbacks, root = self._fit_loggers_and_callbacks(cfg, trainer_cfg, callbacks)
        else:  # an evaluation writes only into its own directory, never into the fit's record (nor W&B's run)
            self.eval_dir = new_eval_dir(self.run_dir, self.subcommand, cfg.get("ckpt_path"))
            loggers, root = [RunMetricsLogger(save_dir=str(self.eval_dir), name="", version="")], self.eval_dir
        if trainer_cfg.get("sync_batchnorm"):  # torch's SyncBatchNorm is CUDA-only; this one also runs on gloo
            plugins = trainer_cfg.get("plugins") or []
            trainer_cfg["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), NormlabSyncBatchNorm()]
        # The Trainer's own root is the run directory, so Lightning's SLURM requeue checkpoints
        # (hpc_ckpt_*.ckpt) land in, and resume from, this run's directory and no other.
        trainer_cfg.update(kwargs, logger=[*loggers, *user_loggers], default_root_dir=str(root))
        # The Trainer as LightningCLI builds it: trainer.callbacks, the callbacks of their own keys, then the
        # config saver (none for a fast_dev_run), from the public attributes LightningCLI keeps.
        user_callbacks = trainer_cfg.get("callbacks") or []
        saver = [] if trainer_cfg.get("fast_dev_run") else [self.save_config_callback(
            self._subcommand_parser(), self._get_subcommand_config(self.config), **self.save_config_kwargs)]
        trainer_cfg["callbacks"] = [*(user_callbacks if isinstance(user_callbacks, list) else [user_callbacks]),
                                    *callbacks, *saver]
        trainer = self.trainer_class(**trainer_cfg)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own plugin is left alone
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if self.subcommand == "fit":
            self._record_precision(trainer)
            # after the Trainer, so that the W&B run config holds the precision that runs
            wandb = make_wandb_logger(cfg.get("wandb"), self._dumped_config(self._get_subcommand_config(self.config)),
                                      cfg.experiment, cfg.run_name, self.run_dir)
            trainer.loggers = [*trainer.loggers, *([wandb] if wandb else [])]
        return trainer

    def _record_precision(self, trainer: Trainer) -> None:
        """Lightning runs fp16 AMP asked for on a CPU as bf16 (with a warning easily missed): the config
        saved in the run directory says what ran, so relaunching it reproduces the run."""
        config = self._get_subcommand_config(self.config).trainer
        asked = config.precision
        if unified_precision(asked) != trainer.precision:
            print(f"normlab: trainer.precision={asked} runs as {trainer.precision} on the "
                  f"{type(trainer.accelerator).__name__.removesuffix('Accelerator')}; config.yaml records "
                  f"{trainer.precision}", file=sys.stderr)
            config.precision = trainer.precision

    def _fit_loggers_and_callbacks(self, cfg, trainer_cfg: dict, callbacks: list) -> tuple[list, list, Path]:
        csv = RunMetricsLogger(save_dir=str(self.run_dir), name="", version="")  # metrics.csv in the run directory
        given = trainer_cfg.get("callbacks") or []  # trainer.callbacks, as LightningCLI users add callbacks
        detectors = [c for c in [*callbacks, *(given if isinstance(given, list) else [given])]
                     if isinstance(c, ExplosionDetector)]
        if len(detectors) > 1:
            raise ValueError("an ExplosionDetector is configured twice (the 'explosion:' key and trainer.callbacks); "
                             "keep one of them")
        if not detectors:
            callbacks = [ExplosionDetector(), *callbacks]  # always on: no run ends `completed` with NaN weights
        callbacks = [*callbacks, RunSummary(), RNGState(), SlurmRequeueAtBatchEnd()]
        if trainer_cfg.get("enable_checkpointing", True) is not False:
            dirpath = str(self.run_dir / CHECKPOINT_DIR)
            callbacks.append(LastCheckpoint(dirpath, cfg.get("checkpoint_every_n_steps") or 0))
            if cfg.save_best:
                callbacks.append(ModelCheckpoint(dirpath=dirpath, filename="best", monitor="val/acc", mode="max",
                                                 save_top_k=1, enable_version_counter=False))
        return [csv], callbacks, self.run_dir

    def after_fit(self) -> None:
        cfg = self.config_init[self.subcommand]
        summary = RunSummary.find(self.trainer)
        if cfg.test_after_fit and summary is not None and summary.summary["status"] == "completed":
            self.final_test_running = True
            with weights_in_memory(self.trainer):  # not a SLURM requeue checkpoint's
                self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
            self.final_test_running = False
        if self.trainer.is_global_zero and summary is not None:
            s = summary.summary
            test = f"{s['test_acc']:.4f}" if s["test_acc"] is not None else "n/a"
            print(f"normlab: {s['status']} | run dir: {self.run_dir} | test/acc {test} | "
                  f"best val/acc {s['best_val_acc'] if s['best_val_acc'] is None else round(s['best_val_acc'], 4)} | "
                  f"{s['wall_seconds']:.0f} s")
        finish_wandb(self.trainer, summary.summary if summary is not None else None)

    def predict(self, model, datamodule=None, **kwargs):
        """`trainer.predict`, keeping the outputs for after_predict (LightningCLI drops them)."""
        self._predictions = self.trainer.predict(model, datamodule=datamodule, **kwargs)

    def after_validate(self) -> None:
        if not self.trainer.is_global_zero:
            return
        cfg = self.config_init[self.subcommand]
        extra = {}
        if self.subcommand == "predict":
            extra["predictions"] = write_predictions(self.eval_dir, self._predictions or [])
        metrics = {k: v for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{_STAGE[self.subcommand]}/")}
        write_eval_summary(self.eval_dir, self.subcommand, cfg.get("ckpt_path"), metrics, run_dir=str(self.run_dir),
                           **extra)
        shown = " | ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()))
        print(f"normlab: {self.subcommand} done | results: {self.eval_dir}" + (f" | {shown}" if shown else "")
              + (f" | {extra['predictions']} predictions" if extra else ""))

    after_test = after_predict = after_validate


_STAGE = {"validate": "val", "test": "test", "predict": "predict"}
# Lightning's older spellings of a precision and the unified name it runs them as (null: its default).
_PRECISION_ALIASES = {"None": "32-true", "64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def unified_precision(precision) -> str:
    """`16` -> `16-mixed`, `bf16` -> `bf16-mixed`, `None` -> `32-true`: what the Trainer calls the precision asked for."""
    return _PRECISION_ALIASES.get(str(precision), str(precision))


def run_cli(args: list[str] | None) -> None:
    """NormlabCLI, with SIGTERM/SIGINT turned into one line and exit 128 + the signal."""
    try:
        NormlabCLI(args=args)
    except (KeyboardInterrupt, SystemExit, RunInterrupted) as stop:
        interrupted = stop if isinstance(stop, RunInterrupted) else interruption(None)
        if interrupted is None:
            raise
        print(f"normlab: {interrupted}", file=sys.stderr)
        sys.exit(interrupted.exit_code)
