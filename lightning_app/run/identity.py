"""What a run *is*: the science config, the run name derived from it, and how two runs differ.

The run name reads like `fashion_mnist_small_cnn_gn_g4_bs128_lr0.001_s0_3f9a1c`: the axes a study
varies, then a short hash of every value that changes what is trained (so two configs differing
anywhere else never share a directory). Which keys change what is trained is decided for every key
of the config and every callback option in `science.py`: not paths, worker counts, devices, logging
or the measuring probes (they restore the training state or only read it, and were tested
bit-identical with and without); the explosion detector's `stop`/`skip_step` settings are. The sweep
planner, `fit`'s resume check and the report's grouping all use `science_config`, so they agree on
what "the same run" is.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

from lightning_app.run.science import CALLBACK, KEYS, SCIENCE, callback_science, counts

BATCH_SIZE_KEY = "data.init_args.batch_size"  # the global training batch in a resolved config
# The registered data modules (`datamodules.DATAMODULES`) by class path, written out: importing the registry
# imports torch, which `lightning sweep` and `lightning report` would wait seconds for just to name a run
# (tests/lightning_app/test_run_contract.py checks that the two agree).
DATA_NAMES = {"datamodules.cifar.CIFAR10DataModule": "cifar10", "datamodules.cifar.CIFAR100DataModule": "cifar100",
              "datamodules.svhn.SVHNDataModule": "svhn", "datamodules.mnist.MNISTDataModule": "mnist",
              "datamodules.mnist.FashionMNISTDataModule": "fashion_mnist"}


def get_dotted(cfg: Any, key: str | Iterable[str]) -> Any:
    """`cfg["a"]["b"]` for key `"a.b"` (or `("a", "b")`); None where any level is missing."""
    for part in key.split(".") if isinstance(key, str) else key:
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def model_args(cfg: dict) -> dict:
    """The model's arguments in a resolved config (nested under `init_args` in subclass mode)."""
    model = cfg.get("model") or {}
    return model.get("init_args", model)


def data_name(data_cfg: dict | None) -> str:
    """The registered name of the configured data module (`fashion_mnist`), else its class name."""
    class_path = (data_cfg or {}).get("class_path", "data")
    for path, name in DATA_NAMES.items():
        class_name = path.rpartition(".")[2]
        if class_path in (path, class_name, f"datamodules.{class_name}"):
            return name
    return class_path.rsplit(".", 1)[-1].lower()


def science_config(cfg: dict) -> dict:
    """The part of a resolved (dumped) subcommand config that decides what is trained (`science.py`).

    `model` and `data` are kept as mappings (a key classified nowhere counts as science), every other
    science key as a dotted entry; a `ScienceUnless` key or a callback only when it counts. This is the
    layout every run name so far was hashed from."""
    model = cfg.get("model")
    selected = {"model": {k: v for k, v in model.items() if _counts(f"model.{k}", v)} if isinstance(model, dict)
                else model}
    data = {k: v for k, v in (cfg.get("data") or {}).items() if _counts(f"data.{k}", v)}
    data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if _counts(f"data.init_args.{k}", v)}
    selected["data"] = data
    for key, kind in KEYS.items():
        if key.startswith(("model.", "data.")):
            continue
        value = get_dotted(cfg, key)
        if kind == SCIENCE:
            selected[key] = value  # None where the config lacks it, as every run name so far
        elif not _present(cfg, key):
            continue  # not the same as null: a config written before the key existed
        elif kind == CALLBACK:
            entries = value if isinstance(value, list) else [value]
            parts = [part for part in map(callback_science, entries) if part is not None]
            if parts:
                selected[key] = parts if isinstance(value, list) else parts[0]
        elif counts(kind, value):
            selected[key] = value
    return json.loads(json.dumps(selected, default=str))  # plain values: comparable with a config read back


def _counts(key: str, value: Any) -> bool:
    return counts(KEYS.get(key, SCIENCE), value)


def _present(cfg: dict, key: str) -> bool:
    """Whether the dotted key is in the config (a missing one is not the same as null)."""
    *parents, last = key.split(".")
    parent = get_dotted(cfg, parents) if parents else cfg
    return isinstance(parent, dict) and last in parent


def science_hash(cfg: dict, length: int = 6) -> str:
    return hashlib.sha1(json.dumps(science_config(cfg), sort_keys=True).encode()).hexdigest()[:length]


def derive_run_name(cfg: dict) -> str:
    """A readable, deterministic run name from a resolved (dumped) subcommand config."""
    model = model_args(cfg)
    batch_size = get_dotted(cfg, BATCH_SIZE_KEY)
    norm = model.get("norm", "norm")
    parts = [data_name(cfg.get("data")), model.get("backbone", "model"), norm]
    from models.norms import is_grouped  # torch: only the CLI names runs, and it has loaded it

    if is_grouped(norm):  # the registry says whether norm_groups changes the layer
        parts.append(f"g{model.get('norm_groups', 32)}")
    lr = model.get("lr")
    parts += [f"bs{'?' if batch_size is None else batch_size}", f"lr{lr:g}" if isinstance(lr, (int, float)) else "lr?",
              f"s{cfg.get('seed_everything')}"]
    return "_".join(str(p) for p in parts) + "_" + science_hash(cfg)


def first_difference(before: Any, after: Any, prefix: str = "") -> str | None:
    """The first dotted key (sorted order) whose value differs, as `key: <before> -> <after>`."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            found = first_difference(before.get(key), after.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if before == after else f"{prefix.rstrip('.')}: {before!r} -> {after!r}"


def science_difference(on_disk: dict, launched: dict) -> str | None:
    """The first difference in science between two resolved configs, or None when they are the same run."""
    return first_difference(science_config(on_disk), science_config(launched))
