"""`ActivationStatistics` against hand computations on known tensors.

A model whose first norm layer receives the batch itself (GroupNorm, then BatchNorm on its output; SGD
with lr 0, so every step sees the same layers) is fit on one known batch. The logged means and
variances are compared with `torch.var_mean` of the batch, the histograms with `numpy.histogram` and
`torch.histc` of the values (the 'after' values are torch's own GroupNorm/BatchNorm of the known
input), the counts below and above with a comparison by hand, and η² with the correlation ratio
written out as loops. Also: which layers are found by default, the hooks' lifetime (only during the
measured step's forward; none left after a fit or an exception), bad settings, and the reader.
"""
import copy
import json
import math
import re

import numpy as np
import pytest
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.activation_records import HISTOGRAM_FILE, bin_edges, complete_records, read_histograms
from callbacks.activation_stats import ActivationStatistics, channel_count, correlation_ratio, grouping
from callbacks.compat import forward_hook_counts
from models.classifier import ImageClassifier
from models.norms import make_norm
from tests.callbacks.probe_models import MetricsCapture, WandbCapture
from tests.helpers import ROOT

C, G = 8, 4


class KnownInputModel(LightningModule):
    """x → norms[0] → norms[1] → ...; the first norm's input is the batch itself. SGD with lr 0."""

    def __init__(self, **norms: nn.Module):
        super().__init__()
        self.norms = nn.ModuleDict(norms)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # γ, β away from 1, 0, so 'after' is not just the normalized input
            for name, p in self.norms.named_parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        for norm in self.norms.values():
            x = norm(x)
        return x

    def training_step(self, batch, batch_idx):
        return self.scale * self(batch[0]).nan_to_num(0.0, 0.0, 0.0).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(model, x, callbacks, steps=2, root=None, more_loggers=()):
    capture = MetricsCapture()
    Trainer(accelerator="cpu", max_steps=steps, logger=[capture, *more_loggers], callbacks=callbacks,
            default_root_dir=root,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0).fit(model, DataLoader(TensorDataset(x), batch_size=len(x)))
    return capture


def known_batch(n=6):
    """Channels with their own offsets and spreads (some mostly outside the range), and values exactly on
    the range's ends and on an inner bin edge."""
    generator = torch.Generator().manual_seed(0)
    offsets = torch.tensor([-5.0, 0.5, 1.0, 3.0, 0.0, -2.0, 4.0, 8.0]).view(1, C, 1, 1)
    spreads = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 1.5, 2.0, 0.25]).view(1, C, 1, 1)
    x = torch.randn(n, C, 5, 4, generator=generator) * spreads + offsets
    x[0, 0, 0, :3] = torch.tensor([-4.0, 4.0, 0.5])
    x[1, 3, 2, :2] = torch.tensor([4.0, -4.0])
    return x


def eta_squared(values: list[float], groups: int) -> float:
    """The correlation ratio by its definition: between-group over total sum of squares."""
    size = len(values) // groups
    grand = sum(values) / len(values)
    total = sum((v - grand) ** 2 for v in values)
    between = sum(size * (sum(values[g * size:(g + 1) * size]) / size - grand) ** 2 for g in range(groups))
    return between / total


def channel_values(t, c):
    return t[:, c].detach().double().flatten()


def test_histograms_moments_and_coherence_match_a_hand_computation(tmp_path):
    x = known_batch()
    model = KnownInputModel(gn=make_norm("gn", C, groups=G), bn=make_norm("bn", C))
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        gn_out = reference.norms.gn(x)
        seen = {("norms.gn", "before"): x, ("norms.gn", "after"): gn_out,
                ("norms.bn", "before"): gn_out, ("norms.bn", "after"): reference.norms.bn(gn_out)}
    channels, bins, lo, hi = [0, 3, 7], 16, -4.0, 4.0
    stats = ActivationStatistics(every_n_steps=1, channels=channels, bins=bins, value_range=(lo, hi))
    capture = fit(model, x, [stats], steps=2, root=tmp_path)

    assert sorted(capture.rows) == [0, 1]
    expected_keys = {f"activation/norms.{layer}/{kind}@{c}" for layer in ("gn", "bn") for kind in ("mean", "var")
                     for c in channels} | {"activation/norms.gn/group_coherence_mean",
                                           "activation/norms.gn/group_coherence_logvar"}
    for step in (0, 1):
        row = capture.rows[step]
        assert set(row) == expected_keys  # bn is ungrouped: no coherence keys
        for layer in ("gn", "bn"):
            before = seen[f"norms.{layer}", "before"]
            for c in channels:
                var, mean = torch.var_mean(channel_values(before, c), unbiased=False)
                assert row[f"activation/norms.{layer}/mean@{c}"] == pytest.approx(float(mean), rel=1e-12, abs=1e-12)
                assert row[f"activation/norms.{layer}/var@{c}"] == pytest.approx(float(var), rel=1e-12)
        means = [float(channel_values(x, c).mean()) for c in range(C)]
        logvars = [math.log(float(channel_values(x, c).var(unbiased=False)) + 1e-5) for c in range(C)]
        assert row["activation/norms.gn/group_coherence_mean"] == pytest.approx(eta_squared(means, G), rel=1e-12)
        assert row["activation/norms.gn/group_coherence_logvar"] == pytest.approx(eta_squared(logvars, G), rel=1e-12)

    records = read_histograms(tmp_path / HISTOGRAM_FILE)
    assert len(records) == 2 * 2 * len(channels) * 2  # steps × layers × channels × before/after
    edges = bin_edges(bins, (lo, hi))
    for record in records:
        assert set(record) == {"step", "layer", "channel", "where", "range", "bins", "counts", "below", "above"}
        assert record["range"] == [lo, hi] and record["bins"] == bins
        values = channel_values(seen[record["layer"], record["where"]], record["channel"])
        assert record["counts"] == np.histogram(values.numpy(), bins=bins, range=(lo, hi))[0].tolist()
        assert record["counts"] == torch.histc(values, bins=bins, min=lo, max=hi).long().tolist()
        assert record["below"] == sum(v < lo for v in values.tolist())
        assert record["above"] == sum(v > hi for v in values.tolist())
        assert record["below"] + sum(record["counts"]) + record["above"] == values.numel()
    first = {(r["layer"], r["channel"], r["where"]): r for r in records if r["step"] == 0}
    assert first["norms.gn", 0, "before"]["below"] > 0 and first["norms.gn", 7, "before"]["above"] > 0
    assert np.array_equal(edges, np.histogram([], bins=bins, range=(lo, hi))[1])


def test_coherence_is_one_when_the_channels_of_each_group_share_their_statistics(tmp_path):
    """Each channel a permutation of one set of values, scaled and shifted per group: inside a group the
    channels' means and variances are equal, so both η² are 1; spread per channel makes them < 1."""
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(4 * 3 * 3, generator=generator)
    group_scale, group_shift = torch.tensor([0.5, 1.0, 2.0, 4.0]), torch.tensor([-1.0, 0.0, 2.0, 0.5])
    x = torch.stack([base[torch.randperm(base.numel(), generator=generator)] * group_scale[c // 2] + group_shift[c // 2]
                     for c in range(C)]).view(C, 4, 3, 3).transpose(0, 1).contiguous()
    capture = fit(KnownInputModel(gn=make_norm("gn", C, groups=G)), x, [ActivationStatistics(every_n_steps=5)],
                  steps=1, root=tmp_path)
    row = capture.rows[0]
    assert row["activation/norms.gn/group_coherence_mean"] == pytest.approx(1.0, abs=1e-12)
    assert row["activation/norms.gn/group_coherence_logvar"] == pytest.approx(1.0, abs=1e-12)
    x[:, ::2] *= 3.0  # the first channel of each group now spreads 3× wider than the second
    capture = fit(KnownInputModel(gn=make_norm("gn", C, groups=G)), x, [ActivationStatistics(every_n_steps=5)],
                  steps=1, root=tmp_path)
    logvars = [math.log(float(channel_values(x, c).var(unbiased=False)) + 1e-5) for c in range(C)]
    assert capture.rows[0]["activation/norms.gn/group_coherence_logvar"] == pytest.approx(eta_squared(logvars, G))
    assert capture.rows[0]["activation/norms.gn/group_coherence_logvar"] < 0.9


def test_nan_and_infinite_values_count_below_above_or_nowhere(tmp_path):
    """norm `none` (the identity in a norm's place): before = after = the batch, with NaN and ±inf in it."""
    x = known_batch(n=2)
    x[0, 1, 0, 0], x[0, 1, 0, 1], x[1, 1, 1, 1], x[1, 1, 2, 2] = math.nan, math.inf, -math.inf, math.nan
    fit(KnownInputModel(none=make_norm("none", C, groups=G)), x, [ActivationStatistics(channels=[1])], steps=1,
        root=tmp_path)
    values = channel_values(x, 1)
    for record in read_histograms(tmp_path / HISTOGRAM_FILE):
        assert record["layer"] == "norms.none"
        assert record["counts"] == np.histogram(values.numpy(), bins=60, range=(-6, 6))[0].tolist()
        finite = values[values.isfinite()]
        assert record["below"] == int((finite < -6).sum()) + 1 and record["above"] == int((finite > 6).sum()) + 1
        assert record["below"] + sum(record["counts"]) + record["above"] == values.numel() - 2  # two NaN


def test_with_gradient_accumulation_the_first_batch_of_the_window_is_measured(tmp_path):
    first, second = known_batch(), known_batch() * 2 + 1
    capture = MetricsCapture()
    Trainer(accelerator="cpu", max_steps=1, accumulate_grad_batches=2, logger=[capture], default_root_dir=tmp_path,
            callbacks=[ActivationStatistics(channels=[3])], enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(KnownInputModel(gn=make_norm("gn", C, groups=G)),
                                            DataLoader(TensorDataset(torch.cat([first, second])), batch_size=len(first)))
    var, mean = torch.var_mean(channel_values(first, 3), unbiased=False)
    assert capture.rows[0]["activation/norms.gn/mean@3"] == pytest.approx(float(mean), rel=1e-12)
    assert capture.rows[0]["activation/norms.gn/var@3"] == pytest.approx(float(var), rel=1e-12)
    assert {r["step"] for r in read_histograms(tmp_path / HISTOGRAM_FILE)} == {0}


@pytest.mark.parametrize("norm,expected", [
    ("gn", ["net.features.1", "net.features.5"]),
    ("none", ["net.features.1", "net.features.5"]),  # the identity in the norm's place, same paths
    ("gn_plus_gn_first", ["net.features.1", "net.features.5"]),  # not the GNPlus layer's BN part
    ("gn_then_bn", ["net.features.1", "net.features.5"]),
])
def test_default_layers_are_the_outermost_norm_layers(norm, expected):
    model = ImageClassifier(backbone="small_cnn", norm=norm, norm_groups=4, in_channels=1, image_size=28)
    assert ActivationStatistics().select_layers(model) == expected
    nested = "net.features.1.bn" if norm == "gn_plus_gn_first" else None
    if nested:  # a layer's part can be named
        assert ActivationStatistics(layers=[nested]).select_layers(model) == [nested]


def test_output_noise_is_outside_the_measured_layer():
    model = ImageClassifier(backbone="small_cnn", norm="gn", norm_groups=4, in_channels=1, image_size=28,
                            norm_options={"noise_mean": 1e-3, "noise_std": 1.001})
    assert ActivationStatistics().select_layers(model) == ["net.features.1.layer", "net.features.5.layer"]


def test_unknown_layer_or_channel_is_one_line_naming_what_exists():
    model = ImageClassifier(backbone="small_cnn", norm="bn", norm_groups=4, in_channels=1, image_size=28)
    with pytest.raises(ValueError) as info:
        ActivationStatistics(layers=["net.features.1", "net.nope"]).select_layers(model)
    assert str(info.value) == ("activation_stats.layers: no norm layer 'net.nope' in the model; available: "
                               "net.features.1, net.features.5")
    with pytest.raises(ValueError, match=re.escape("layer net.features.1 has 16 channels (0..15), got channel 16")):
        ActivationStatistics(channels=[0, 16]).select_layers(model)


def test_a_compiled_network_is_refused():
    """torch.compile'd code does not run hooks added after compiling (checked here with the eager backend):
    the callback would silently measure nothing, so it refuses."""
    net = nn.Sequential(nn.Linear(3, 3), nn.GroupNorm(1, 3))
    compiled, x, calls = torch.compile(net, backend="eager"), torch.randn(4, 3), []
    compiled(x)
    handle = net[1].register_forward_hook(lambda *args: calls.append(1))
    compiled(x)
    handle.remove()
    assert calls == []
    model = ImageClassifier(backbone="small_cnn", norm="gn", norm_groups=4, in_channels=1, image_size=28, compile=True)
    with pytest.raises(ValueError, match=re.escape("activation_stats: model.compile=true runs the network through "
                                                   "torch.compile, which does not call hooks added after compiling")):
        ActivationStatistics().select_layers(model)


@pytest.mark.parametrize("bad,message", [
    (dict(every_n_steps=0), "activation_stats.every_n_steps must be an integer >= 1, got 0"),
    (dict(every_n_steps=True), "activation_stats.every_n_steps must be an integer >= 1, got True"),
    (dict(every_n_steps=2.0), "activation_stats.every_n_steps must be an integer >= 1, got 2.0"),
    (dict(layers=[]), "activation_stats.layers must be null (every norm layer) or a non-empty list of module paths"),
    (dict(layers="net.features.1"), "activation_stats.layers must be null"),
    (dict(channels=[]), "activation_stats.channels must be a non-empty list of distinct integers >= 0, got []"),
    (dict(channels=[-1]), "activation_stats.channels must be a non-empty list of distinct integers >= 0, got [-1]"),
    (dict(channels=[True]), "activation_stats.channels must be a non-empty list of distinct integers >= 0, got [True]"),
    (dict(channels=[1, 1]), "activation_stats.channels must be a non-empty list of distinct integers >= 0, got [1, 1]"),
    (dict(bins=0), "activation_stats.bins must be an integer in [1, 512], got 0"),
    (dict(bins=True), "activation_stats.bins must be an integer in [1, 512], got True"),
    (dict(bins=513), "activation_stats.bins must be an integer in [1, 512], got 513"),
    (dict(value_range=(1.0, -1.0)), "activation_stats.value_range must be two finite numbers [lo, hi] with lo < hi"),
    (dict(value_range=(0.0, math.nan)), "activation_stats.value_range must be two finite numbers"),
    (dict(value_range=(0.0, 1.0, 2.0)), "activation_stats.value_range must be two finite numbers"),
    (dict(value_range=(False, 1.0)), "activation_stats.value_range must be two finite numbers"),
])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ActivationStatistics(**bad)


def hook_counts(module: nn.Module) -> dict[str, tuple[int, int]]:
    return {name: forward_hook_counts(m) for name, m in module.named_modules()}


class HookWatcher(Callback):
    """Hook counts after every callback's on_train_batch_start and at on_before_optimizer_step (where
    the landscape and Hessian probes run their own forwards)."""

    def __init__(self):
        self.at_start, self.at_optimizer_step = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.at_start[trainer.global_step] = hook_counts(pl_module)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.at_optimizer_step[trainer.global_step] = hook_counts(pl_module)


def test_hooks_live_only_during_the_measured_forward(tmp_path):
    model = KnownInputModel(gn=make_norm("gn", C, groups=G), bn=make_norm("bn", C))
    plain = hook_counts(model)
    assert plain["norms.bn"] == (1, 0)  # the BN's own batch check stays
    watcher = HookWatcher()
    fit(model, known_batch(), [ActivationStatistics(every_n_steps=2), watcher], steps=4, root=tmp_path)
    for step in range(4):
        measured = {"norms.gn": (1, 1), "norms.bn": (2, 1)} if step % 2 == 0 else {}
        assert watcher.at_start[step] == {**plain, **measured}, step
        assert watcher.at_optimizer_step[step] == plain, step
    assert hook_counts(model) == plain


class FailsAtStep(nn.Module):
    """Raises in the forward of step `step`, after the norm before it ran (its hooks are attached)."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.step:
            raise RuntimeError("a failing step")
        return x


def test_no_hook_is_left_after_an_exception(tmp_path):
    model = KnownInputModel(gn=make_norm("gn", C, groups=G), fail=FailsAtStep(2))
    plain = hook_counts(model)
    with pytest.raises(RuntimeError, match="a failing step"):
        fit(model, known_batch(), [ActivationStatistics(every_n_steps=2)], steps=4, root=tmp_path)
    assert model.norms.fail.calls == 3  # it failed in step 2's forward, a measured one
    assert hook_counts(model) == plain


def test_reader_keeps_the_last_record_per_key_and_skips_a_cut_last_line(tmp_path):
    path = tmp_path / HISTOGRAM_FILE

    def line(step, counts, channel=0):
        return json.dumps({"step": step, "layer": "a", "channel": channel, "where": "before", "range": [-1, 1],
                           "bins": 2, "counts": counts, "below": 0, "above": 0}) + "\n"

    path.write_text(line(0, [1, 1]) + line(2, [5, 5]) + line(2, [6, 6], channel=1) + line(2, [7, 7])
                    + line(4, [9, 9])[:30])
    records = read_histograms(path)
    assert [(r["step"], r["channel"], r["counts"]) for r in records] == [(0, 0, [1, 1]), (2, 1, [6, 6]),
                                                                          (2, 0, [7, 7])]
    path.write_text(line(0, [1, 1]) + "{not json\n" + line(2, [5, 5]))
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2, is not a histogram record")):
        read_histograms(path)


class TwiceCalledNorm(KnownInputModel):
    """x → gn → gn: one layer called twice in a forward; both calls are its record."""

    def forward(self, x):
        return self.norms.gn(self.norms.gn(x))


def test_a_layer_called_twice_in_one_forward_counts_both_calls(tmp_path):
    x = known_batch()
    model = TwiceCalledNorm(gn=make_norm("gn", C, groups=G))
    with torch.no_grad():
        once = copy.deepcopy(model).norms.gn(x)
        twice = copy.deepcopy(model).norms.gn(once)
    channels, bins, lo, hi = [0, 3], 8, -3.0, 3.0
    capture = fit(model, x, [ActivationStatistics(every_n_steps=1, channels=channels, bins=bins, value_range=(lo, hi))],
                  steps=1, root=tmp_path / "deep" / "er")  # the log folder's parents made too
    row = capture.rows[0]
    for c in channels:
        var, mean = torch.var_mean(torch.cat([channel_values(x, c), channel_values(once, c)]), unbiased=False)
        assert row[f"activation/norms.gn/mean@{c}"] == pytest.approx(float(mean), rel=1e-12, abs=1e-12)
        assert row[f"activation/norms.gn/var@{c}"] == pytest.approx(float(var), rel=1e-12)
    seen = {"before": (x, once), "after": (once, twice)}
    for record in read_histograms(tmp_path / "deep" / "er" / HISTOGRAM_FILE):
        values = torch.cat([channel_values(t, record["channel"]) for t in seen[record["where"]]])
        assert record["counts"] == np.histogram(values.numpy(), bins=bins, range=(lo, hi))[0].tolist()
        assert record["below"] + sum(record["counts"]) + record["above"] == values.numel()


class NoLossAtFirst(KnownInputModel):
    """The measured step's forward runs, then its training_step returns no loss (Lightning skips the backward)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return None if batch_idx == 0 else loss


def test_a_step_that_returned_no_loss_is_still_measured(tmp_path):
    x = known_batch()
    capture = MetricsCapture()
    Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, logger=[capture], default_root_dir=tmp_path,
            callbacks=[ActivationStatistics(every_n_steps=1, channels=[0])], enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False).fit(
        NoLossAtFirst(gn=make_norm("gn", C, groups=G)), DataLoader(TensorDataset(x), batch_size=len(x)))
    mean = float(channel_values(x, 0).mean())
    assert capture.rows[0]["activation/norms.gn/mean@0"] == pytest.approx(mean, rel=1e-12)


class Grouped(nn.Module):
    """A norm-like module that says it has `groups` groups over `num_features` channels."""

    def __init__(self, groups, channels):
        super().__init__()
        self.groups, self.num_features, self.eps = groups, channels, 1e-3


@pytest.mark.parametrize("layer, expected", [
    (nn.GroupNorm(4, 8, eps=1e-4), (4, 1e-4)),
    (Grouped(4, 8), (4, 1e-3)),
    (Grouped(4, 6), None),  # 4 groups do not tile 6 channels: no coherence
    (nn.BatchNorm2d(8), None),
    (nn.Sequential(nn.BatchNorm2d(8), nn.GroupNorm(2, 8, eps=1e-2)), (2, 1e-2)),  # the first grouped part
    (Grouped(4, None), None),  # no channel count to tile
], ids=["gn", "groups-attribute", "groups-not-dividing", "bn", "parts", "no-channel-count"])
def test_grouping_finds_the_groups_that_tile_the_channels(layer, expected):
    assert grouping(layer) == expected


@pytest.mark.parametrize("layer, expected", [
    (nn.GroupNorm(4, 8), 8), (nn.BatchNorm2d(6), 6), (nn.Sequential(nn.Identity(), nn.BatchNorm2d(6)), 6),
    (nn.Identity(), None)], ids=["gn", "bn", "first-part-with-a-count", "none"])
def test_channel_count_is_the_layers_own_or_its_first_parts(layer, expected):
    assert channel_count(layer) == expected


def test_a_resumed_run_drops_a_cut_last_line_even_when_every_whole_line_is_kept(tmp_path):
    path = tmp_path / HISTOGRAM_FILE
    whole = json.dumps({"step": 0, "layer": "l", "channel": 0, "where": "before"}) + "\n"
    path.write_text(whole + '{"step": 4, "lay')
    stats = ActivationStatistics()
    stats._file = path
    stats._drop_lines_from(5)
    assert path.read_text() == whole


def test_correlation_ratio_of_a_small_spread_is_not_nan():
    """η² does not depend on the scale: a total sum of squares below 1 is still a ratio."""
    values = [0.1, 0.15, 0.3, 0.2, 0.05, 0.4]
    assert correlation_ratio(torch.tensor(values, dtype=torch.float64), 3) == pytest.approx(
        eta_squared(values, 3), rel=1e-12)
    assert math.isnan(correlation_ratio(torch.full((4,), 0.5, dtype=torch.float64), 2))


def test_wandb_histograms_are_the_bins_inside_the_range_with_their_edges():
    stats = ActivationStatistics(bins=4, value_range=(-1.0, 3.0))
    logged = stats._wandb_histograms({("norms.gn", 2, "after"): [9, 1, 2, 3, 4, 7]})  # below, 4 bins, above
    assert list(logged) == ["activation_hist/norms.gn/after@2"]
    histogram = logged["activation_hist/norms.gn/after@2"]
    assert histogram.histogram == [1, 2, 3, 4]
    assert histogram.bins == [-1.0, 0.0, 1.0, 2.0, 3.0]


def test_a_damaged_line_names_its_error_and_a_whole_file_is_not_cut(tmp_path):
    path = tmp_path / HISTOGRAM_FILE
    record = {"step": 0, "layer": "l", "channel": 0, "where": "before"}
    path.write_text(json.dumps(record) + "\n")
    assert complete_records(path) == ([record], False)
    path.write_text(json.dumps(record) + "\n{oops\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2, is not a histogram record (JSONDecodeError: ")):
        complete_records(path)


def test_a_wandb_logger_gets_the_scalars_and_each_histogram(tmp_path):
    """The W&B logger's rows: every scalar the other loggers get, and a `wandb.Histogram` per (layer, channel,
    where) with the file record's counts inside the range and its edges."""
    x, wandb_logger = known_batch(), WandbCapture()
    stats = ActivationStatistics(every_n_steps=1, channels=[0, 3], bins=8, value_range=(-3.0, 3.0))
    capture = fit(KnownInputModel(gn=make_norm("gn", C, groups=G)), x, [stats], steps=1, root=tmp_path,
                  more_loggers=[wandb_logger])
    row = wandb_logger.rows[0]
    assert {k: v for k, v in row.items() if k.startswith("activation/")} == capture.rows[0]
    records = read_histograms(tmp_path / HISTOGRAM_FILE)
    assert sorted(k for k in row if k.startswith("activation_hist/")) == sorted(
        f"activation_hist/{r['layer']}/{r['where']}@{r['channel']}" for r in records)
    for record in records:
        histogram = row[f"activation_hist/{record['layer']}/{record['where']}@{record['channel']}"]
        assert histogram.histogram == record["counts"]
        assert histogram.bins == bin_edges(8, (-3.0, 3.0)).tolist()


def test_the_defaults_are_what_the_preset_says():
    """configs/presets/activations.yaml uses the defaults and states them: every 50 steps, channels 0-2."""
    preset = (ROOT / "configs" / "presets" / "activations.yaml").read_text()
    assert "every 50\n# steps" in preset and "histograms of channels 0-2" in preset
    stats = ActivationStatistics()
    assert (stats.every_n_steps, stats.channels, stats.bins, stats.value_range) == (50, [0, 1, 2], 60, (-6.0, 6.0))


def test_a_model_without_norm_layers_or_hyper_parameters_is_named_as_such():
    with pytest.raises(ValueError) as error:
        ActivationStatistics(layers=["net.0"]).select_layers(nn.Sequential(nn.Linear(2, 2)))
    assert str(error.value) == ("activation_stats.layers: no norm layer 'net.0' in the model; available: none (the "
                                "model has no norm layer)")
