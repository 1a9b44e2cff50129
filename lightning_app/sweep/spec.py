"""The sweep file (`configs/sweeps/*.yaml`): what it may say, and its expansion into runs.

    experiment: table2_cifar10          # run directory group (default: the sweep file's name)
    config: configs/experiments/x.yaml  # base config file(s), applied in order like repeated --config
    args: {trainer.max_epochs: 20}      # fixed overrides for every run (dotted keys)
    grid:                               # dotted key -> list of values; the runs are the product
      model.norm: [bn, gn]
      data.init_args.batch_size, model.lr: [[8, 0.00625], [128, 0.1]]   # keys that vary together
    seeds: [0, 1, 2]                    # sets seed_everything; the outermost loop
    slurm: {...}                        # `--launcher slurm` settings (see export.py)
    wandb: {...}                        # `--launcher wandb` settings (see export.py)

`grid` may also be a list of such mappings: the sweep is then the union of their products, in order
(as scikit-learn's ParameterGrid does), for arms that vary different keys. Every run is a list of
`--key value` arguments appended after the base configs, so the CLI parses it exactly as if typed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightning_app.run.paths import check_name
from lightning_app.yaml_files import load_yaml

SWEEP_KEYS = ("experiment", "config", "args", "grid", "seeds", "slurm", "wandb")


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    experiment: str
    configs: tuple[str, ...]
    args: dict[str, Any]
    grids: tuple[tuple[tuple[tuple[str, ...], tuple[tuple, ...]], ...], ...]  # per grid: (keys, value rows)
    seeds: tuple[int, ...] | None
    slurm: dict[str, Any] = field(default_factory=dict)
    wandb: dict[str, Any] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point (dotted key -> value), seeds outermost, then the grids in file order."""
        points = []
        for seed in self.seeds if self.seeds is not None else (None,):
            for grid in self.grids:
                for combo in itertools.product(*(rows for _, rows in grid)):
                    point = {key: value for (keys, _), row in zip(grid, combo) for key, value in zip(keys, row)}
                    if seed is not None:
                        point["seed_everything"] = seed
                    points.append(point)
        return points

    def run_args(self, point: dict[str, Any], extra: list[str] = ()) -> list[str]:
        """The `fit` arguments of one run: base configs, experiment, fixed args, the point, `extra` last."""
        args = [arg for path in self.configs for arg in ("--config", path)]
        args += ["--experiment", self.experiment]
        for key, value in {**self.args, **point}.items():
            args += [f"--{key}", format_cli_value(value)]
        return args + list(extra)

    def is_cartesian(self) -> bool:
        """One grid whose every axis is a single key: what a W&B grid sweep can express directly."""
        return len(self.grids) == 1 and all(len(keys) == 1 for keys, _ in self.grids[0])


def format_cli_value(value: Any) -> str:
    """A command-line string that the CLI's YAML parsing turns back into exactly `value`."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        text = repr(value)
        # PyYAML (YAML 1.1) reads `1e-05` as a string: its floats need a '.' in the mantissa.
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e")
        return text
    if isinstance(value, (dict, list, tuple)):
        return yaml.safe_dump(_plain(value), default_flow_style=True, width=1 << 30).strip()
    raise ValueError(f"sweep value {value!r} has type {type(value).__name__}; allowed: str, int, float, bool, "
                     "null, lists and mappings of those")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every mistake is a one-line ValueError naming the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    raw = load_yaml(path.read_text(), str(path)) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a sweep file is a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown sweep key(s) {unknown}; allowed: {', '.join(SWEEP_KEYS)}")
    configs = raw.get("config")
    configs = [configs] if isinstance(configs, str) else configs
    if not configs or not all(isinstance(c, str) for c in configs):
        raise ValueError(f"{path}: 'config' must name a base config file or a list of them, got {configs!r}")
    for config in configs:
        if not Path(config).is_file():
            raise FileNotFoundError(f"{path}: base config {config} does not exist (paths are relative to "
                                    f"the directory you run `lightning sweep` from)")
    args = raw.get("args") or {}
    if not isinstance(args, dict):
        raise ValueError(f"{path}: 'args' must map dotted config keys to values, got {args!r}")
    grids = raw.get("grid") or {}
    grids = [grids] if isinstance(grids, dict) else grids
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise ValueError(f"{path}: 'grid' must be a mapping (key -> list of values) or a list of mappings")
    parsed_grids = tuple(_parse_grid(path, i, g) for i, g in enumerate(grids or [{}]))
    seeds = raw.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                              for s in seeds):
            raise ValueError(f"{path}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
        if any("seed_everything" in keys for grid in parsed_grids for keys, _ in grid) or "seed_everything" in args:
            raise ValueError(f"{path}: set the seed with 'seeds' or with seed_everything in grid/args, not both")
    for section in ("slurm", "wandb"):
        if not isinstance(raw.get(section) or {}, dict):
            raise ValueError(f"{path}: '{section}' must be a mapping of settings, got {raw[section]!r}")
    experiment = raw.get("experiment") or path.stem
    if not isinstance(experiment, str) or "/" in experiment:
        raise ValueError(f"{path}: 'experiment' must be a plain name (no '/'), got {experiment!r}")
    check_name(f"{path}: experiment", experiment)  # it also names the SLURM job and the W&B sweep
    return SweepSpec(path=path, experiment=experiment, configs=tuple(configs), args=dict(args), grids=parsed_grids,
                     seeds=tuple(seeds) if seeds is not None else None, slurm=dict(raw.get("slurm") or {}),
                     wandb=dict(raw.get("wandb") or {}))


def _parse_grid(path: Path, index: int, grid: dict) -> tuple[tuple[tuple[str, ...], tuple[tuple, ...]], ...]:
    where = f"{path}: grid" + (f"[{index}]" if index else "")
    axes, seen = [], set()
    for key, values in grid.items():
        keys = tuple(k.strip() for k in str(key).split(","))
        if not all(keys) or seen & set(keys) or len(set(keys)) < len(keys):
            raise ValueError(f"{where}: key {key!r} is empty or repeats a key of this grid")
        seen |= set(keys)
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: {key!r} must have a non-empty list of values, got {values!r}")
        if len(keys) == 1:
            rows = tuple((v,) for v in values)
        else:
            bad = [v for v in values if not isinstance(v, list) or len(v) != len(keys)]
            if bad:
                raise ValueError(f"{where}: {key!r} varies {len(keys)} keys together, so each value must be a "
                                 f"list of {len(keys)}; got {bad[0]!r}")
            rows = tuple(tuple(v) for v in values)
        axes.append((keys, rows))
    return tuple(axes)
