"""Small rules of the report, at their edges: which activation-histogram records are whole
(`runs._histogram_problem`), how a value tied to the batch size is written (`groups.tied_rule`), which
setting a differing key belongs to (`groups.setting_root`), how a config value is written (`groups.compact`) and
the order of layers in a table (`tables.layer_order`)."""
import datetime
import json

import pytest
import yaml

from lightning_app.report.groups import compact, setting_root, tied_rule
from lightning_app.report.runs import _histogram_problem, _read_mapping, load_runs, read_histogram_records, read_metrics
from lightning_app.report.tables import layer_order
from tests.lightning_app.report.report_runs import write_run

GOOD = {"step": 0, "layer": "net.1", "channel": 1, "where": "before", "bins": 2, "range": [0.0, 1.0],
        "counts": [1, 2], "below": 0, "above": 0}
NAMING = "needs a step and a channel (integers >= 0), a layer name and where: before|after"


@pytest.mark.parametrize("change", [dict(step=-1), dict(step=True), dict(channel=-2), dict(layer=3),
                                    dict(where="middle")], ids=lambda c: f"{next(iter(c))}={next(iter(c.values()))}")
def test_a_histogram_record_must_name_its_step_layer_channel_and_side(change):
    assert _histogram_problem(GOOD) is None
    assert _histogram_problem({**GOOD, **change}) == NAMING


BINNING = "needs bins >= 1 and a range [lo, hi] of finite numbers with lo < hi"
COUNTS = "needs `bins` counts, below and above, each an integer >= 0"


@pytest.mark.parametrize("change,problem", [
    (dict(bins=1, counts=[3]), None), (dict(range=[-1, 2]), None),  # one bin and integer ends are whole
    (dict(bins=0, counts=[]), BINNING), (dict(range=[1.0, 1.0]), BINNING), (dict(range=[0.0, float("inf")]), BINNING),
    (dict(range=["0", 1.0]), BINNING), (dict(range=[0.0, 1.0, 2.0]), BINNING),
    (dict(counts=[1]), COUNTS), (dict(counts=[1, -1]), COUNTS), (dict(counts=(1, 2)), COUNTS),
    (dict(below=-1), COUNTS), (dict(above=None), COUNTS), (dict(below=0.5), COUNTS),
], ids=lambda c: repr(c) if not isinstance(c, dict) else ",".join(f"{k}={v}" for k, v in c.items()))
def test_a_histogram_record_needs_a_binning_and_its_counts(change, problem):
    assert _histogram_problem({**GOOD, **change}) == problem

@pytest.mark.parametrize("key, by_batch, rule", [
    ("model.lr", {4: 0.1 * 4 / 128 * (1 + 5e-7), 128: 0.1}, "lr = 0.1 × bs/128"),  # equal within 1e-6
    ("trainer.max_steps", {4: 4096 * (1 + 5e-7), 128: 128}, "trainer.max_steps = 16384 / bs"),
    ("model.lr", {16: 0.0125, 128: 0.1, "auto": 0.1}, "lr: 0.0125 at bs 16, 0.1 at bs 128, 0.1 at bs auto"),
    ("model.norm", {128: "bn", 16: "gn"}, "norm: gn at bs 16, bn at bs 128"),
])
def test_a_tied_value_is_written_as_its_rule_or_else_listed_in_batch_order(key, by_batch, rule):
    assert tied_rule(key, by_batch) == rule


@pytest.mark.parametrize("key, twins, root", [
    ("model.norm_options.noise_std", [{"model.norm_options": None}], "model.norm_options"),
    ("data.init_args.batch_size", [{"data": None}, {"data.init_args": None}], "data"),  # the shortest
    ("model.lr", [{"model.norm": "bn"}], "model.lr"),  # no twin has a prefix of it as a whole setting
])
def test_a_differing_key_is_shown_as_the_whole_setting_a_twin_has(key, twins, root):
    assert setting_root(key, twins) == root


@pytest.mark.parametrize("value, text", [
    ({"noise_granularity": "group", "noise_std": 1.001}, "{noise_granularity: group, noise_std: 1.001}"),
    (None, "null"), (True, "true"), (0.0125, "0.0125"), ("Xception", "Xception"), ([1, 2], "[1, 2]"),
    (datetime.date(2026, 12, 7), "2026-12-07"),  # a YAML date in a saved config: no JSON type, written as text
])
def test_a_config_value_is_written_as_a_reader_writes_it(value, text):
    assert compact(value) == text


def test_layers_are_in_network_order_numbers_numerically_and_before_names():
    layers = ["net.features.12", "net.classifier", "net.features.9", "net.features.1.conv", "net.features.1.bn"]
    assert sorted(layers, key=layer_order) == ["net.classifier", "net.features.1.bn", "net.features.1.conv",
                                               "net.features.9", "net.features.12"]
    assert sorted(["net.block.x", "net.block.2"], key=layer_order) == ["net.block.2", "net.block.x"]


def test_metrics_rows_keep_their_step_and_epoch_and_a_row_of_the_wrong_width_is_named(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/acc\n,,2.0,\n0,4,1.5,\n1,9,,0.5\n")  # a row without step or epoch
    metrics = read_metrics(path)
    assert sorted(metrics) == ["train/loss", "val/acc"]  # step and epoch are the axes, not series
    assert metrics["train/loss"].steps.tolist() == [0, 4] and metrics["train/loss"].epochs.tolist() == [0, 0]
    assert metrics["val/acc"].steps.tolist() == [9] and metrics["val/acc"].epochs.tolist() == [1]
    for bad in ("0,4,1.5,,7\n", "0,4\n"):  # a field too many, two too few
        path.write_text("epoch,step,train/loss,val/acc\n0,0,2.0,\n" + bad)
        with pytest.raises(ValueError) as error:
            read_metrics(path)
        assert str(error.value) == (f"{path} line 3: not a CSV-logger metrics row (its number of fields differs "
                                    "from the header's)")


def test_a_histogram_file_that_is_not_one_is_named_with_the_record_it_stops_at(tmp_path):
    path = tmp_path / "activation_histograms.jsonl"
    path.write_text(json.dumps({**GOOD, "layer": ["net", 1]}) + "\n")  # a layer no key can hold
    with pytest.raises(ValueError) as error:
        read_histogram_records(path)
    assert str(error.value) == f"{path}: not a histogram file (TypeError: unhashable type: 'list')"
    long_layer = "net." + "x" * 120
    path.write_text(json.dumps({**GOOD, "layer": long_layer, "step": -1}) + "\n")
    with pytest.raises(ValueError) as error:
        read_histogram_records(path)
    where = repr((-1, long_layer, 1, "before"))[:100]  # cut at 100 characters
    assert str(error.value) == f"{path}: the record (step, layer, channel, where) = {where} {NAMING}"


def test_a_run_file_that_holds_no_mapping_is_named_with_what_it_holds(tmp_path):
    path = tmp_path / "summary.json"
    for text, held in (("[1, 2]", "list '[1, 2]'"), ("{}", "dict '{}'"), ('"' + "x" * 60 + '"', f"str '{'x' * 40}'")):
        path.write_text(text)
        with pytest.raises(ValueError) as error:
            _read_mapping(path, json.loads, "JSON")
        assert str(error.value) == f"summary.json holds {held}, not a mapping of results"
    (tmp_path / "config.yaml").write_text("- a\n")
    with pytest.raises(ValueError, match=r"^config.yaml holds list \"\['a'\]\", not a mapping of settings$"):
        _read_mapping(tmp_path / "config.yaml", yaml.safe_load, "YAML")

    def silent(text):  # a parser whose error says nothing: its type is the reason
        raise ValueError()

    with pytest.raises(ValueError, match=r"^summary.json is not valid JSON \(ValueError\)$"):
        _read_mapping(path, silent, "JSON")


def test_load_runs_skips_a_summary_without_config_and_names_every_unreadable_run(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match=f"^runs directory {root} does not exist$"):
        load_runs(root)
    (root / "a_lone_summary").mkdir(parents=True)  # sorts first: the runs after it still count
    (root / "a_lone_summary" / "summary.json").write_text("{}")
    kept = write_run(root, "bn", 8, 0, "completed", 0.9, rows=[])
    (kept / "activation_histograms.jsonl").write_text("not json\n")
    runs, skipped = load_runs(root)
    assert [r.path for r in runs] == [kept] and runs[0].histograms == []
    assert skipped == [f"no activation histograms for {kept}: {kept / 'activation_histograms.jsonl'}, line 1, is "
                       "not a histogram record (JSONDecodeError: Expecting value: line 1 column 1 (char 0)); delete "
                       "the file to start its record over"]
    bad = [write_run(root, norm, 8, 0, "completed", 0.9, rows=[], experiment="bad") for norm in ("bn", "gn")]
    for run in bad:
        (run / "summary.json").write_text("[]")
    (kept / "summary.json").unlink()
    with pytest.raises(ValueError) as error:
        load_runs(root)
    assert str(error.value) == (f"no run directories (with summary.json and config.yaml) under {root}; skipped "
                                f"{bad[0]}: summary.json holds list '[]', not a mapping of results; skipped {bad[1]}: "
                                "summary.json holds list '[]', not a mapping of results")
