"""`ActivationStatistics`: what the norm layers receive and emit during training, on the step's own batch.

The course report (Sridhar, Azim & Talegaonkar 2018, "A Comparison of Batch Normalization and Group
Normalization", §III "Visualizations") follows training through TensorBoard: the histogram of a
channel's values before and after normalization as it evolves, and the means of a layer's channels
over time, arguing that grouping channels helps only when the channels of a group share statistics.

At every global step divisible by `every_n_steps` (step 0 included), forward pre-hooks and hooks on
the chosen norm layers read the training step's own forward (no extra pass; attached for that step
only and removed once its forward is done, before any probe's forward), and record per layer:

- for each chosen channel c, its values before (the layer's input) and after (its output; before any
  output noise) as a fixed-bin histogram: `bins` equal bins over `value_range` = [lo, hi] (edges
  `bin_edges`, as numpy.histogram: each bin closed on the left, the last also on the right) plus the
  counts below lo and above hi (NaN counts nowhere);
- the pre-norm mean m_c and biased variance σ²_c of every channel over (N, H, W);
  `activation/<layer>/mean@<c>` and `activation/<layer>/var@<c>` for the chosen channels;
- for a grouped norm (G groups of C/G consecutive channels: gn, ln, in, GNPlus, gn_then_bn, gbgn, bgn
  when G divides C), the group coherence of a per-channel statistic v_c over all C channels, the
  correlation ratio

      η² = Σ_g (C/G)·(v̄_g − v̄)² / Σ_c (v_c − v̄)²      (v̄_g: mean over group g, v̄: over all C)

  i.e. the between-group share of the channels' total sum of squares. It is logged for the means,
  v_c = m_c (`activation/<layer>/group_coherence_mean`), and for the log-variances,
  v_c = log(σ²_c + ε) with ε the layer's eps, what the norm divides by
  (`activation/<layer>/group_coherence_logvar`). η² = 1: the channels inside each group share the
  statistic; (G − 1)/(C − 1) is what a random assignment of channels to groups gives on average; it
  is NaN when all C channels share the value. Ungrouped norms (bn, none) get no coherence keys.

Scalars go to every logger at the measured global step (so `metrics.csv` has them); the histograms to
`<trainer.log_dir>/activation_histograms.jsonl`, one JSON object per line
(`{"step", "layer", "channel", "where": "before"|"after", "range": [lo, hi], "bins", "counts",
"below", "above"}`; read back with `read_histograms`), and with a W&B logger also as
`wandb.Histogram`s under `activation_hist/<layer>/<where>@<c>`. Under DDP the per-channel sums, sums
of squares, counts and the histogram counts are summed over the ranks (one all-reduce), so the numbers
describe the global batch; rank 0 alone logs and writes. A resumed run first drops the lines of steps
at or after its checkpoint's (it measures them again) and a last line a kill cut short.

With gradient accumulation the measured batch is the first of the step's accumulation window.
"""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import WandbLogger
from torch import nn

from callbacks.activation_records import HISTOGRAM_FILE, WHERE, bin_edges, complete_records
from callbacks.run_files import atomic_write_text
from models.norms import GNPlus, is_norm_module
from value_ranges import Range, check_values, integer, is_finite_number, is_integer

MAX_BINS = 512  # W&B's largest histogram
OPTIONS = {
    "every_n_steps": integer(1),
    "layers": Range(lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) > 0
                                            and all(isinstance(name, str) for name in v)),
                    "null (every norm layer) or a non-empty list of module paths"),
    "channels": Range(lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_integer(c) and c >= 0 for c in v)
                      and len(set(v)) == len(v), "a non-empty list of distinct integers >= 0"),
    "bins": Range(lambda v: is_integer(v) and 1 <= v <= MAX_BINS, f"an integer in [1, {MAX_BINS}]"),
    "value_range": Range(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(is_finite_number, v))
                         and v[0] < v[1], "two finite numbers [lo, hi] with lo < hi"),
}


def norm_layer_paths(module: nn.Module) -> list[str]:
    """Every normalization layer of `module` by module path, nested ones (a GNPlus layer's BN part) included."""
    return [name for name, m in module.named_modules() if name and (is_norm_module(m) or isinstance(m, GNPlus))]


def channel_count(layer: nn.Module) -> int | None:
    """C of a norm layer (from its own attributes or its first part that has one), None if unknown."""
    for attribute in ("num_channels", "num_features"):
        if isinstance(getattr(layer, attribute, None), int):
            return getattr(layer, attribute)
    return next((c for c in map(channel_count, layer.children()) if c is not None), None)


def grouping(layer: nn.Module) -> tuple[int, float] | None:
    """(G, ε) of a norm layer that normalizes groups of C/G consecutive channels, else None."""
    groups = layer.num_groups if isinstance(layer, nn.GroupNorm) else getattr(layer, "groups", None)
    if isinstance(groups, int):
        channels = channel_count(layer)
        return (groups, float(layer.eps)) if channels and channels % groups == 0 else None
    return next((g for g in map(grouping, layer.children()) if g is not None), None)


def correlation_ratio(values: torch.Tensor, groups: int) -> float:
    """η² of `values` (one per channel) over `groups` groups of consecutive channels."""
    blocks = values.view(groups, -1)
    grand = values.mean()
    total = (values - grand).pow(2).sum()
    between = blocks.shape[1] * (blocks.mean(dim=1) - grand).pow(2).sum()
    return float(between / total) if total > 0 else math.nan


class _LayerRecord:
    """One layer's sums for one measurement: Σx, Σx² and the count per channel, and the histogram counts."""

    def __init__(self):
        self.sum = self.sum_of_squares = self.count = None
        self.histograms: dict[str, torch.Tensor] = {}  # where -> (channels, below + bins + above)

    def add_moments(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64)
        dims = [0, *range(2, x.dim())]
        count = torch.full((x.shape[1],), x.numel() // x.shape[1], dtype=torch.float64, device=x.device)
        moments = (x.sum(dims), x.square().sum(dims), count)
        if self.sum is None:
            self.sum, self.sum_of_squares, self.count = moments
        else:  # a layer called twice in one forward: both calls count
            self.sum, self.sum_of_squares, self.count = (a + b for a, b in
                                                         zip((self.sum, self.sum_of_squares, self.count), moments))

    def add_histogram(self, where: str, counts: torch.Tensor) -> None:
        self.histograms[where] = counts + self.histograms[where] if where in self.histograms else counts

    def flat(self) -> list[torch.Tensor]:
        return [self.sum, self.sum_of_squares, self.count, *(self.histograms[w].double().flatten() for w in WHERE)]


class ActivationStatistics(Callback):
    def __init__(self, every_n_steps: int = 50, layers: list[str] | None = None,
                 channels: Sequence[int] = (0, 1, 2), bins: int = 60,
                 value_range: tuple[float, float] = (-6.0, 6.0)):
        """
        Args:
            every_n_steps: measure at the global steps divisible by this (step 0 included).
            layers: module paths of the norm layers to measure, relative to the LightningModule
                (`net.features.1`); None: every norm layer (the outermost, not a layer's parts).
            channels: the channels whose values are histogrammed and whose mean and variance are logged.
            bins: equal-width histogram bins over `value_range` (at most 512, W&B's limit).
            value_range: the histograms' (lo, hi); values outside are counted below and above.
        """
        check_values("activation_stats.", OPTIONS, {"every_n_steps": every_n_steps, "layers": layers,
                                                    "channels": channels, "bins": bins, "value_range": value_range})
        self.every_n_steps, self.layers, self.channels = every_n_steps, layers, [int(c) for c in channels]
        self.bins, self.value_range = bins, (float(value_range[0]), float(value_range[1]))
        self._paths: list[str] = []
        self._handles: list = []
        self._records: dict[str, _LayerRecord] = {}
        self._step: int | None = None  # the step being measured
        self._last_step: int | None = None
        self._file: Path | None = None

    # -- layers ------------------------------------------------------------------------------------
    def select_layers(self, pl_module: nn.Module) -> list[str]:
        """The module paths to measure; an unknown path, a channel a layer lacks or a compiled network is
        one ValueError line."""
        if getattr(pl_module, "hparams", {}).get("compile"):
            # torch.compile does not guard on module hooks (torch._dynamo.config.skip_nnmodule_hook_guards):
            # hooks added after the first compiled call would never run, nothing would be measured
            raise ValueError("activation_stats: model.compile=true runs the network through torch.compile, which "
                             "does not call hooks added after compiling; measure with model.compile: false")
        available = norm_layer_paths(pl_module)
        if self.layers is None:
            paths = [p for p in available if not any(p.startswith(f"{q}.") for q in available)]
        else:
            unknown = [p for p in self.layers if p not in available]
            if unknown:
                raise ValueError(f"activation_stats.layers: no norm layer {unknown[0]!r} in the model; available: "
                                 f"{', '.join(available) or 'none (the model has no norm layer)'}")
            paths = list(dict.fromkeys(self.layers))
        for path in paths:
            channels = channel_count(pl_module.get_submodule(path))
            if channels is not None and max(self.channels) >= channels:
                raise ValueError(f"activation_stats.channels: layer {path} has {channels} channels "
                                 f"(0..{channels - 1}), got channel {max(self.channels)}")
        return paths

    # -- hooks -------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._paths = self.select_layers(pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_step = None
        self._file = Path(trainer.log_dir or trainer.default_root_dir) / HISTOGRAM_FILE  # a collective under DDP
        if trainer.is_global_zero:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._drop_lines_from(trainer.global_step)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or step == self._last_step or not self._paths:
            return
        self._step = self._last_step = step
        self._records = {path: _LayerRecord() for path in self._paths}
        edges = torch.as_tensor(bin_edges(self.bins, self.value_range))
        for path in self._paths:
            layer = pl_module.get_submodule(path)  # looked up now: DDP's sync-BN conversion replaces modules
            record = self._records[path]
            self._handles += [layer.register_forward_pre_hook(partial(self._before, record, edges)),
                              layer.register_forward_hook(partial(self._after, record, edges))]

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        self._finish(trainer)  # the forward is done: nothing else (a probe's forward) is measured

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        self._finish(trainer)  # a training step that returned no loss has no backward

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._remove_hooks()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._remove_hooks()

    # -- measurement -------------------------------------------------------------------------------
    @torch.compiler.disable
    def _before(self, record: _LayerRecord, edges: torch.Tensor, layer: nn.Module, inputs: tuple) -> None:
        x = inputs[0]
        record.add_moments(x)
        record.add_histogram("before", self._histograms(x, edges))

    @torch.compiler.disable
    def _after(self, record: _LayerRecord, edges: torch.Tensor, layer: nn.Module, inputs: tuple,
               output: torch.Tensor) -> None:
        record.add_histogram("after", self._histograms(output, edges))

    @torch.no_grad()
    def _histograms(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """(channels, below + bins + above) counts of the chosen channels' values, as numpy.histogram
        bins them; bucketize + bincount, which are deterministic on every device (histc is not on CUDA)."""
        if max(self.channels) >= x.shape[1]:
            raise ValueError(f"activation_stats.channels: a layer has {x.shape[1]} channels, got channel "
                             f"{max(self.channels)}")
        values = x.detach()[:, self.channels].transpose(0, 1).reshape(len(self.channels), -1).to(torch.float64)
        edges = edges.to(values.device)
        slot = torch.bucketize(values, edges, right=True)  # 0 below, 1..bins inside, bins + 1 at hi or above
        slot = torch.where(values == edges[-1], self.bins, slot)  # hi closes the last bin
        width = self.bins + 3  # one more slot per channel for NaN, dropped
        slot = torch.where(values.isnan(), self.bins + 2, slot)
        slot += torch.arange(len(self.channels), device=slot.device).unsqueeze(1) * width
        counts = torch.bincount(slot.flatten(), minlength=len(self.channels) * width)
        return counts.view(len(self.channels), width)[:, : self.bins + 2]

    def _finish(self, trainer: Trainer) -> None:
        if self._step is None:
            return
        step = self._step
        records = {p: r for p, r in self._records.items() if r.sum is not None and len(r.histograms) == 2}
        self._step, self._records = None, {}
        self._remove_hooks()
        if not records:
            return
        flat = torch.cat([t for r in records.values() for t in r.flat()])
        if trainer.world_size > 1:
            flat = trainer.strategy.reduce(flat, reduce_op="sum")  # the global batch's sums and counts
        if not trainer.is_global_zero:
            return
        metrics, histograms = self._unpack(flat.cpu(), records, trainer.lightning_module)
        self._write(step, histograms)
        for logger in trainer.loggers:
            extra = self._wandb_histograms(histograms) if isinstance(logger, WandbLogger) else {}
            logger.log_metrics({**metrics, **extra}, step=step)

    def _unpack(self, flat: torch.Tensor, records: dict[str, _LayerRecord], pl_module: nn.Module):
        """The metrics, and {(layer, channel, where): (below + bins + above counts)}."""
        metrics, histograms, offset = {}, {}, 0
        k = len(self.channels)
        for path, record in records.items():
            c = record.sum.numel()
            total, squares, count = flat[offset: offset + 3 * c].view(3, c)
            offset += 3 * c
            for where in WHERE:
                counts = flat[offset: offset + k * (self.bins + 2)].view(k, self.bins + 2).round().long()
                offset += k * (self.bins + 2)
                for channel, row in zip(self.channels, counts.tolist()):
                    histograms[path, channel, where] = row
            mean = total / count
            var = (squares / count - mean.square()).clamp(min=0)
            for channel in self.channels:
                metrics[f"activation/{path}/mean@{channel}"] = float(mean[channel])
                metrics[f"activation/{path}/var@{channel}"] = float(var[channel])
            grouped = grouping(pl_module.get_submodule(path))
            if grouped is not None:
                groups, eps = grouped
                metrics[f"activation/{path}/group_coherence_mean"] = correlation_ratio(mean, groups)
                metrics[f"activation/{path}/group_coherence_logvar"] = correlation_ratio(torch.log(var + eps), groups)
        return metrics, histograms

    def _write(self, step: int, histograms: dict[tuple, list[int]]) -> None:
        lines = [json.dumps({"step": step, "layer": path, "channel": channel, "where": where,
                             "range": list(self.value_range), "bins": self.bins, "counts": row[1:-1],
                             "below": row[0], "above": row[-1]})
                 for (path, channel, where), row in histograms.items()]
        with open(self._file, "a") as file:  # one write of whole lines, flushed at the close
            file.write("".join(f"{line}\n" for line in lines))

    def _wandb_histograms(self, histograms: dict[tuple, list[int]]) -> dict:
        import wandb  # only with a W&B logger

        edges = bin_edges(self.bins, self.value_range)
        return {f"activation_hist/{path}/{where}@{channel}": wandb.Histogram(np_histogram=(row[1:-1], edges))
                for (path, channel, where), row in histograms.items()}

    def _drop_lines_from(self, step: int) -> None:
        """Keep the lines of steps before `step` (a resumed run measures the later ones again), less a last
        line a kill cut short."""
        if self._file is None or not self._file.is_file():
            return
        records, cut = complete_records(self._file)
        kept = [record for record in records if record["step"] < step]
        if cut or len(kept) < len(records):
            atomic_write_text(self._file, "".join(f"{json.dumps(record)}\n" for record in kept))

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
