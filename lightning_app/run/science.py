"""What changes the result of a run: every config key and every callback option, classified in one place.

A run's identity (`identity.py`: its science config, the hash its name ends with, the difference
two runs are refused for) is made of the keys classified here as science. Three classes:
- `SCIENCE`: what is trained and how: the model and its optimization, the data and its order, the
  seeds, when training stops, the numeric precision. Always part of the identity.
- `ScienceUnless(value)`: changes what is trained, but joined the identity after runs had been named;
  it is part of the identity unless it equals `value`, the value every run had before, so their names
  stay. The value is written here, not read from the code's defaults: a default changed later makes
  the new default part of new runs' names, instead of giving them the old runs' names.
- `NOT_SCIENCE`: where and how fast it runs (hardware, devices, strategy, workers, kernel choice),
  where files go, what is logged, measured or evaluated, and how a run is resumed.
Devices and strategy are not science although, without sync_batchnorm, they change the batch each
BN statistic sees: `devices: auto` means another count on another machine, so the config cannot
say it; `summary.json` records `world_size` and `norm_batch_size` instead. The model's speed switches
(`channels_last`, `compile`, `fused_optimizer`) are science: they change the floating-point results,
and every run name since the first hashes them.

A callback's options are classified by its class (`CALLBACKS`), under its own config key or listed in
`trainer.callbacks`; a class not classified here counts as science with all its options. The
explosion detector's options are science (`stop` and `skip_step` change what is trained, and its
thresholds decide when they act) except its logging; its `sync_every` default, None, reads every step
on a CPU as 1 did, and every 16 steps on an accelerator, which like the device count is not science; the probes and the λ tracker restore or never
touch the training state (tested bit-identical), and the activation statistics only read it, so none
of theirs is.

`tests/lightning_app/test_run_science.py` walks the real parser's keys (the data modules' and every
callback's init_args included) and fails on a key classified nowhere.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Union

SCIENCE = "science"
NOT_SCIENCE = "not science"
CALLBACK = "callback"  # a callback's section (or list of them): each option as its class says


@dataclass(frozen=True)
class ScienceUnless:
    """Science, left out of the identity while it equals `value`, or one of `same` (values that train as
    `value` did: see the module docstring)."""

    value: Any
    same: tuple = ()


Classification = Union[str, ScienceUnless]


def _all(kind: str, *keys: str) -> dict[str, str]:
    return dict.fromkeys(keys, kind)


@dataclass(frozen=True)
class CallbackOptions:
    """A callback class, named by its import path: the callbacks import torch and Lightning, which the
    commands that only read runs (`lightning report`, a sweep's plan) never load; the CLI loads `cls`."""

    class_path: str
    options: dict[str, Classification]

    @property
    def cls(self) -> type:
        module, _, name = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)


# The callbacks a preset switches on through a top-level key of its own (so that presets compose: a list
# under trainer.callbacks would be replaced, not merged, by a second --config), with each option's class.
CALLBACKS: dict[str, CallbackOptions] = {
    "landscape": CallbackOptions("callbacks.landscape.LandscapeProbe", _all(
        NOT_SCIENCE, "every_n_steps", "step_sizes", "relative_to_lr", "direction", "exclude_norm_params")),
    "hessian": CallbackOptions("callbacks.hessian.HessianTopEigen", _all(NOT_SCIENCE, "every_n_steps", "iterations", "tolerance", "seed")),
    "explosion": CallbackOptions("callbacks.explosion.ExplosionDetector", {
        "action": ScienceUnless("stop"), "spike_action": ScienceUnless("warn"), "spike_factor": ScienceUnless(10.0),
        "spike_quantile": ScienceUnless(0.9), "window": ScienceUnless(100), "warmup_steps": ScienceUnless(1),
        "spike_patience": ScienceUnless(1), "vanish_threshold": ScienceUnless(1e-8),
        "vanish_patience": ScienceUnless(100), "sync_every": ScienceUnless(1, same=(None,)), "max_skips": ScienceUnless(10),
        "grad_norm_every_n_steps": NOT_SCIENCE}),
    "lambda_tracker": CallbackOptions("callbacks.lambda_tracker.LambdaTracker", _all(NOT_SCIENCE, "every_n_steps", "log_raw", "log_grad_norm")),
    "activation_stats": CallbackOptions("callbacks.activation_stats.ActivationStatistics", _all(
        NOT_SCIENCE, "every_n_steps", "layers", "channels", "bins", "value_range")),
}

# Every key of a resolved `fit` config (dotted; a data module's options under data.init_args).
KEYS: dict[str, Classification] = {
    "seed_everything": SCIENCE,
    **_all(NOT_SCIENCE, "config", "print_config", "experiment", "run_name", "overwrite", "test_after_fit",
           "save_best", "wandb", "checkpoint_every_n_steps", "ckpt_path", "weights_only"),
    # the model: every option
    **_all(SCIENCE, *(f"model.{key}" for key in (
        "backbone", "norm", "norm_groups", "norm_options", "backbone_options", "num_classes", "in_channels",
        "image_size", "optimizer", "lr", "momentum", "betas", "weight_decay", "norm_weight_decay",
        "lambda_lr_scale", "lambda_max_step", "schedule", "milestones", "gamma", "step_size", "warmup_epochs",
        "channels_last", "compile", "fused_optimizer"))),
    # the data: which set, split, batches, order and augmentation; not where the files are or how fast
    # batches arrive (on_device gives the same batches: tests/datamodules)
    "data.class_path": SCIENCE,
    **_all(SCIENCE, *(f"data.init_args.{key}" for key in (
        "batch_size", "val_split", "split_seed", "drop_last", "crop_padding", "horizontal_flip", "seed",
        "use_extra"))),
    **_all(NOT_SCIENCE, *(f"data.init_args.{key}" for key in (
        "data_dir", "download", "num_workers", "pin_memory", "persistent_workers", "eval_batch_size",
        "on_device"))),
    # the trainer: when training stops and how a step is computed; a trimmed run is not the full run
    **_all(SCIENCE, *(f"trainer.{key}" for key in (
        "max_epochs", "max_steps", "precision", "accumulate_grad_batches", "gradient_clip_val",
        "gradient_clip_algorithm", "sync_batchnorm", "limit_train_batches"))),
    "trainer.fast_dev_run": ScienceUnless(False),
    "trainer.min_epochs": ScienceUnless(None),  # act with early stopping
    "trainer.min_steps": ScienceUnless(None),
    "trainer.max_time": ScienceUnless(None),
    "trainer.overfit_batches": ScienceUnless(0.0),
    "trainer.callbacks": CALLBACK,
    **_all(NOT_SCIENCE, *(f"trainer.{key}" for key in (
        "accelerator", "strategy", "devices", "num_nodes", "plugins", "deterministic", "benchmark",
        "inference_mode", "use_distributed_sampler",  # the data module samples (and shards) itself
        "logger", "log_every_n_steps", "enable_progress_bar", "enable_model_summary", "enable_autolog_hparams",
        "profiler", "detect_anomaly", "barebones", "default_root_dir", "enable_checkpointing", "model_registry",
        # validation and evaluation: nothing here acts on them during training (no early stopping or
        # plateau schedule)
        "limit_val_batches", "limit_test_batches", "limit_predict_batches", "val_check_interval",
        "check_val_every_n_epoch", "num_sanity_val_steps", "reload_dataloaders_every_n_epochs"))),
    # callbacks under a key of their own
    **_all(CALLBACK, *CALLBACKS),
}
_BY_CLASS_PATH = {c.class_path: c for c in CALLBACKS.values()}


def classification(key: str) -> Classification | None:
    """How config key `key` (dotted) is classified; None when it is classified nowhere."""
    return KEYS.get(key)


def callback_science(entry: Any) -> dict | None:
    """The science of one callback entry (`{class_path, init_args}`): the class and its options that
    change the result (a class not in `CALLBACKS`: all of them); None when nothing of it does."""
    if not isinstance(entry, dict):
        return None if entry is None else {"value": entry}
    known = _BY_CLASS_PATH.get(entry.get("class_path"))
    init_args = entry.get("init_args") or {}
    if known is None:
        return {"class_path": entry.get("class_path"), "init_args": init_args}
    science = {option: value for option, value in init_args.items()
               if counts(known.options.get(option, SCIENCE), value)}
    return {"class_path": entry["class_path"], "init_args": science} if science else None


def counts(kind: Classification, value: Any) -> bool:
    """Whether a value of a key classified `kind` is part of the identity."""
    if isinstance(kind, ScienceUnless):
        return value != kind.value and value not in kind.same
    return kind == SCIENCE
