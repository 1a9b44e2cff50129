"""Where a run lives: `<trainer.default_root_dir>/<experiment>/<run_name>/`.

The run name is derived deterministically from the configuration, so a sweep knows which runs are
done, and a relaunch of the same command finds its own directory. It reads like
`fashion_mnist_small_cnn_gn_g4_bs128_lr0.001_s0_3f9a1c`: the axes a study varies, then a short hash of
every other value that changes the science (so two configs differing anywhere else never share a
directory). Paths, worker counts and logging switches are not part of it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Config keys (dotted) whose values decide the result of a run, and data keys that do not.
SCIENCE_KEYS = ("model", "data", "seed_everything", "trainer.max_epochs", "trainer.max_steps", "trainer.precision",
                "trainer.accumulate_grad_batches", "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm",
                "trainer.sync_batchnorm", "trainer.limit_train_batches")  # a trimmed run is not the full run
NON_SCIENCE_DATA_KEYS = {"data_dir", "download", "num_workers", "pin_memory", "persistent_workers",
                         "eval_batch_size", "on_device"}  # on_device: the same batches, faster
UNGROUPED_NORMS = {"none", "bn", "ln", "in"}


def _get(cfg: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def data_name(data_cfg: dict | None) -> str:
    """The registered name of the configured data module (`fashion_mnist`), else its class name."""
    class_path = (data_cfg or {}).get("class_path", "data")
    from datamodules import DATAMODULES

    for name, cls in DATAMODULES.items():
        if class_path in (f"{cls.__module__}.{cls.__name__}", cls.__name__, f"datamodules.{cls.__name__}"):
            return name
    return class_path.rsplit(".", 1)[-1].lower()


def science_config(cfg: dict) -> dict:
    selected = {key: _get(cfg, key) for key in SCIENCE_KEYS}
    data = dict(selected.get("data") or {})
    data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if k not in NON_SCIENCE_DATA_KEYS}
    selected["data"] = data
    for key, value in cfg.items():  # analysis callbacks enabled through top-level keys change what is measured
        if isinstance(value, dict) and "class_path" in value and key not in ("model", "data"):
            selected[key] = value
    return selected


def derive_run_name(cfg: dict) -> str:
    """A readable, deterministic run name from a resolved (dumped) subcommand config."""
    model = cfg.get("model") or {}
    model = model.get("init_args", model)
    data_args = (cfg.get("data") or {}).get("init_args") or {}
    norm = model.get("norm", "norm")
    parts = [data_name(cfg.get("data")), model.get("backbone", "model"), norm]
    if norm not in UNGROUPED_NORMS:
        parts.append(f"g{model.get('norm_groups', 32)}")
    parts += [f"bs{data_args.get('batch_size', '?')}", f"lr{model.get('lr', '?'):g}" if isinstance(
        model.get("lr"), (int, float)) else "lr?", f"s{cfg.get('seed_everything')}"]
    digest = hashlib.sha1(json.dumps(science_config(cfg), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return "_".join(str(p) for p in parts) + "_" + digest


def default_experiment(config_paths: list) -> str:
    """The first config file's name without extension (`quickstart`), or `default` without one."""
    if not config_paths:
        return "default"
    return Path(str(config_paths[0])).stem
