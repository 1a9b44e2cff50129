"""Which runs the report compares: one run per piece of science, and groups that differ only along axes.

- Identical science (the same science config, seed included, under two run names) counts once: the
  report keeps the most finished run (completed > exploded > the rest), the newest among equals, and
  says which it used. Measuring callbacks (λ tracker, landscape probe, ...) do not count
  (run/identity.py).
- A group holds the runs that differ only along the given axes (norm, batch size, seed, ...) and, when
  the batch size is one of them, in config values *tied to the batch size* within the experiment: a
  value shared by every run of one batch size that differs between batch sizes. The GN paper's
  Tables 2–4 scale the LR with the batch (lr = 0.1 × bs/128), and a study with a fixed budget of
  training images scales max_steps the other way (max_steps = 16384 / bs): each is one table, and the
  table states the rule (`tied_rule`).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass

from lightning_app.report.runs import AXES, RunRecord, numeric_key
from lightning_app.run.identity import get_dotted, science_config, science_hash
from lightning_app.run.paths import SUMMARY_FILE
from lightning_app.run.status import FINISHED

STATUS_RANK = {status: rank for rank, status in enumerate(FINISHED)}  # completed before exploded


def science_items(run: RunRecord) -> dict[str, str]:
    """The run's science config (run/identity.py: what its run name's hash covers, JSON-safe values) as
    flat `dotted.key -> JSON text`."""
    science = science_config(run.config)
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True)

    walk("", science)
    return flat


def _digest(items: dict[str, str]) -> str:
    return hashlib.sha1(json.dumps(sorted(items.items())).encode()).hexdigest()[:8]


def deduplicate(runs: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """One run per (experiment, science config with seed); a note for each set of duplicates."""
    by_science: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_science[(run.experiment, science_hash(run.config))].append(run)  # the run name's hash
    kept, notes = [], []
    for (_, digest), same in by_science.items():
        same.sort(key=lambda r: (STATUS_RANK.get(r.status, 2), -_mtime(r)))
        kept.append(same[0])
        if len(same) > 1:
            others = ", ".join(f"`{r.experiment}/{r.name}` ({r.status})" for r in same[1:])
            notes.append(f"`{same[0].experiment}/{same[0].name}` ({same[0].status}) and {others} are the same "
                         f"configuration and seed (science hash {digest}): counted once, using the first")
    return sorted(kept, key=lambda r: r.path), notes


def _mtime(run: RunRecord) -> float:
    try:
        return (run.path / SUMMARY_FILE).stat().st_mtime
    except OSError:
        return 0.0


@dataclass
class Group:
    runs: list[RunRecord]
    tied: dict[str, dict]  # dotted key -> {batch size: value}, the values tied to the batch size
    digest: str  # what the runs share, hashed: tells apart groups whose titles read the same

    def rules(self) -> list[str]:
        return [tied_rule(key, values) for key, values in sorted(self.tied.items())]


def tied_keys(runs: list[RunRecord], exclude: set[str]) -> dict[str, dict]:
    """Keys (not in `exclude`) whose value is one per batch size across `runs` and differs between them."""
    items = [science_items(run) for run in runs]
    batch_key = AXES["batch_size"]
    tied = {}
    for key in sorted(set().union(*items) - exclude - {batch_key}):
        per_batch: dict = defaultdict(set)
        for flat in items:
            per_batch[json.loads(flat.get(batch_key, "null"))].add(flat.get(key, "null"))
        if len(per_batch) > 1 and all(len(v) == 1 for v in per_batch.values()) and \
                len({next(iter(v)) for v in per_batch.values()}) > 1:
            tied[key] = {bs: json.loads(next(iter(v))) for bs, v in per_batch.items()}
    return tied


def grouped(runs: list[RunRecord], *varying: str) -> list[Group]:
    """Runs that differ only along the `varying` axes (and, when batch_size varies, in the values tied
    to it within their experiment), in a stable order: experiment, tied values, learning rate, then the
    smallest batch size as a number (a landscape of batch 8 before one of batch 32)."""
    exclude = {AXES[axis] for axis in varying}
    by_experiment: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_experiment[run.experiment].append(run)
    groups = []
    for experiment in sorted(by_experiment):
        members = by_experiment[experiment]
        tied = tied_keys(members, exclude) if "batch_size" in varying else {}
        buckets: dict[str, list[RunRecord]] = defaultdict(list)
        for run in members:
            shared = {k: v for k, v in science_items(run).items() if k not in exclude and k not in tied}
            buckets[f"{experiment}:{_digest(shared)}"].append(run)
        for digest, bucket in buckets.items():
            batch_sizes = {run.axis("batch_size") for run in bucket}
            groups.append(Group(bucket, {k: v for k, v in tied.items() if len(batch_sizes & set(v)) > 1}, digest))
    return sorted(groups, key=lambda g: (g.runs[0].experiment, str(sorted(map(str, g.tied))),
                                         numeric_key(g.runs[0].axis("lr")),
                                         min(numeric_key(run.axis("batch_size")) for run in g.runs), g.digest))


def short_key(key: str) -> str:
    """`model.lr` -> `lr`, `lambda_tracker.init_args.every_n_steps` -> `lambda_tracker.every_n_steps`."""
    return key.removeprefix("model.").replace(".init_args.", ".")


def tied_rule(key: str, by_batch: dict) -> str:
    """The rule a tied value follows, as a reader writes it: `lr = 0.1 × bs/128` (proportional to the
    batch size, anchored at the largest), `trainer.max_steps = 16384 / bs` (inverse), else the list."""
    name = short_key(key)
    sizes = sorted(bs for bs in by_batch if isinstance(bs, (int, float)))
    values = [by_batch[bs] for bs in sizes]
    if len(sizes) == len(by_batch) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        top, top_value = sizes[-1], by_batch[sizes[-1]]
        if all(math.isclose(v, top_value * bs / top, rel_tol=1e-6) for bs, v in zip(sizes, values)):
            return f"{name} = {top_value:g} × bs/{top:g}"
        product = top_value * top
        if all(math.isclose(v, product / bs, rel_tol=1e-6) for bs, v in zip(sizes, values)):
            return f"{name} = {product:g} / bs"
    return f"{name}: " + ", ".join(f"{by_batch[bs]} at bs {bs}" for bs in sorted(by_batch, key=numeric_key))


def group_title(group: Group, *fixed: str) -> str:
    """What a group's runs share, readably: experiment, data set, backbone and the fixed axes that are
    neither tied to the batch size nor different between its runs (a weight decay only when not 0)."""
    run = group.runs[0]
    parts = [run.experiment, run.dataset, run.backbone]
    names = {"batch_size": "bs", "lr": "lr", "norm": "norm", "seed": "seed", "weight_decay": "wd"}
    for axis in fixed:
        values = {json.dumps(r.axis(axis), default=str) for r in group.runs}
        if AXES[axis] in group.tied or len(values) > 1:
            continue
        value = run.axis(axis)
        if axis == "weight_decay" and not value:
            continue
        parts.append(f"{names[axis]} {value:g}" if isinstance(value, float) else f"{names[axis]} {value}")
    return " · ".join(str(p) for p in parts)


def unique_titles(groups: list[Group], *fixed: str) -> list[str]:
    """Titles of groups; where two read the same, each names the settings in which it differs from the
    others of that title (`norm_options {noise_granularity: group, noise_std: 1.001}` against
    `norm_options null`), or its config hash where that cannot be said in a few words."""
    titles = [group_title(g, *fixed) for g in groups]
    settings = [science_items(g.runs[0]) for g in groups]
    named = []
    for title, group, own in zip(titles, groups, settings):
        twins = [other for t, other in zip(titles, settings) if t == title]
        if len(twins) == 1:
            named.append(title)
            continue
        keys = {k for other in twins for k in other} - set(AXES.values()) - set(group.tied)
        differing = sorted({setting_root(k, twins) for k in keys if len({other.get(k) for other in twins}) > 1})
        config = science_config(group.runs[0].config)
        shown = " · ".join(f"{short_key(k)} {compact(get_dotted(config, k))}" for k in differing)
        named.append(f"{title} · {shown}" if differing and len(shown) <= 100
                     else f"{title} · config {group.digest.split(':')[1]}")
    return named


def setting_root(key: str, twins: list[dict[str, str]]) -> str:
    """The shortest prefix of a flat key that is a whole setting in one of the twins (`model.norm_options`
    where one run has it null and another a dict), so the title shows the setting, not its leaves."""
    parts = key.split(".")
    for end in range(1, len(parts)):
        prefix = ".".join(parts[:end])
        if any(prefix in other for other in twins):
            return prefix
    return key


def compact(value) -> str:
    """A config value as a reader writes it: `{noise_granularity: group, noise_std: 1.001}`, `null`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, default=str).strip('"')
