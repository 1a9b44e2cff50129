"""The report's tables never show a wrong number: uneven seeds, exploded seeds, NaN or untrained runs,
the same science under two names, values tied to the batch size, bad run files, atomic writes.
Expected cells are computed by hand in the comments."""
import math
import os
import re
import time

import matplotlib.figure
import pytest

from lightning_app.command import main
from lightning_app.report.groups import deduplicate, group_title, grouped, tied_keys, tied_rule, unique_titles
from lightning_app.report.runs import load_runs
from lightning_app.report.tables import (AccuracyTable, Cell, accuracy_table, final_lambda_tables, ordered_norms,
                                         table_markdown)
from tests.lightning_app.report.report_runs import write_run


def report_text(root, tmp_path) -> str:
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    return (out / "report.md").read_text()


def table_rows(text: str, heading_start: str = "### ") -> list[str]:
    start = text.index(heading_start, text.index("## Accuracy"))
    block = text[start:text.find("\n## ", start)]
    return [line for line in block.splitlines() if line.startswith("|")]


def test_uneven_seeds_and_cells_mixing_exploded_and_finished_seeds(tmp_path):
    root = tmp_path / "runs"
    cells = {("bn", 8): [0.80, 0.81, 0.90], ("bn", 32): [0.85, 0.86, None],
             ("gn", 8): [0.70, 0.72, 0.74, 0.90], ("gn", 32): [None, None, 0.879]}
    for (norm, bs), values in cells.items():
        for seed, value in enumerate(values):
            write_run(root, norm, bs, seed, "exploded" if value is None else "completed", value, rows=[])
    runs, _ = load_runs(root)
    text = table_markdown(accuracy_table(runs, "final_val_acc"))
    rows = text.splitlines()
    # bn 8: mean 83.67 (median 81 would read 81.00), sample std √(((−3.67)² + (−2.67)² + 6.33²)/2) = 5.51
    # gn 8: mean 76.50, std √((6.5² + 4.5² + 2.5² + 13.5²)/3) = 9.15
    assert rows[2] == "| 8 | 83.67 ± 5.51 | 76.50 ± 9.15 |"
    assert rows[3] == "| 32 | 85.50 ± 0.71 † | 87.90 † |"  # exploded seeds left out of the mean, marked
    assert rows[4] == "| Mean | 84.58 | 82.20 |"  # (83.67 + 85.50)/2, (76.50 + 87.90)/2
    assert rows[5] == "| Variance | 1.68 | 64.98 |"  # 1.833²/2, 11.4²/2
    assert "- Seeds per cell: 3, 4; several seeds: mean ± sample std." in text
    assert "- †: batch size 32, bn: 1 of 3 seeds exploded; the others are averaged." in text
    assert "- †: batch size 32, gn: 2 of 3 seeds exploded; the others are averaged." in text


def test_values_tied_to_the_batch_size_make_one_table_in_numeric_order(tmp_path):
    root = tmp_path / "runs"
    for bs in (128, 2, 32, 8):  # written out of order on purpose
        for norm, acc in (("bn", 0.80 + bs / 1000), ("gn", 0.85)):
            write_run(root, norm, bs, 0, "completed", acc, lr=0.1 * bs / 128, trainer={"max_steps": 1024 // bs},
                      rows=[])
    text = report_text(root, tmp_path)
    accuracy = text[text.index("## Accuracy"):text.index("\n## ", text.index("## Accuracy"))]
    assert accuracy.count("\n### ") == 1  # one table, not one per learning rate
    assert "### study · fashion_mnist · small_cnn\n" in accuracy  # no single lr to name
    assert "\nTied to the batch size: lr = 0.1 × bs/128; trainer.max_steps = 1024 / bs.\n\n| Batch size |" in accuracy
    rows = table_rows(text)
    assert [row.split(" | ")[0] for row in rows[2:6]] == ["| 2", "| 8", "| 32", "| 128"]
    assert rows[5] == "| 128 | 92.80 | 85.00 |"


def test_a_group_names_the_values_tied_to_its_batch_sizes_only_when_it_holds_two_of_them(tmp_path):
    """max_steps = 1024 / bs across the experiment: the group at two batch sizes is tied by it, the group
    at one (another weight decay) is not, and a tied group sorts before an untied one of a lower LR."""
    root = tmp_path / "runs"
    for bs in (8, 32):
        write_run(root, "bn", bs, 0, "completed", 0.9, lr=0.1, trainer={"max_steps": 1024 // bs}, rows=[])
    write_run(root, "bn", 8, 0, "completed", 0.9, lr=0.01, trainer={"max_steps": 128}, rows=[],
              model={"weight_decay": 5e-4})
    tied, single = grouped(load_runs(root)[0], "norm", "batch_size", "seed")
    assert tied.tied == {"trainer.max_steps": {8: 128, 32: 32}} and len(tied.runs) == 2
    assert single.tied == {} and single.rules() == [] and single.runs[0].axis("lr") == 0.01


def test_a_group_setting_reads_dates_and_ignores_the_key_order_of_maps_in_lists(tmp_path):
    """A YAML date (a `datetime.date` once loaded) is a setting like any other, and two runs whose lists of
    maps differ only in key order share one."""
    root = tmp_path / "runs"
    for seed, stage in ((0, "{a: 1, b: 2}"), (1, "{b: 2, a: 1}")):
        run = write_run(root, "bn", 8, seed, "completed", 0.9, rows=[])
        text = (run / "config.yaml").read_text()
        extra = f"model:\n  noted: 2026-12-08\n  stages: [{stage}]\n"
        (run / "config.yaml").write_text(text.replace("model:\n", extra, 1))
    runs, _ = load_runs(root)
    assert [list(r.config["model"]["stages"][0]) for r in runs] == [["a", "b"], ["b", "a"]]
    assert {type(r.config["model"]["noted"]).__name__ for r in runs} == {"date"}
    (group,) = grouped(runs, "seed")
    assert len(group.runs) == 2


def test_tied_rule_names_proportional_inverse_and_irregular_values():
    assert tied_rule("model.lr", {8: 0.00625, 128: 0.1, 32: 0.025}) == "lr = 0.1 × bs/128"
    assert tied_rule("trainer.max_steps", {2: 8192, 128: 128}) == "trainer.max_steps = 16384 / bs"
    assert tied_rule("lambda_tracker.init_args.every_n_steps", {2: 5, 8: 3}) == \
        "lambda_tracker.every_n_steps: 5 at bs 2, 3 at bs 8"


def test_the_same_science_under_two_run_names_counts_once(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.90, run_name="first", rows=[])
    newer = write_run(root, "bn", 8, 0, "completed", 0.80, run_name="renamed", rows=[])
    os.utime(newer / "summary.json", (time.time() + 5, time.time() + 5))
    write_run(root, "bn", 8, 1, "completed", 0.70, rows=[])  # another seed: a second value
    text = report_text(root, tmp_path)
    rows = table_rows(text)
    assert rows[2] == "| 8 | 75.00 ± 7.07 |"  # 80 and 70: the newer of the two identical runs, once
    assert ("`study/renamed` (completed) and `study/first` (completed) are the same configuration and seed"
            in text) and "counted once, using the first" in text
    assert "Seeds per cell: 2;" in text


@pytest.mark.parametrize("statuses, kept, others", [
    (("completed", "exploded", "failed"), "completed", ("exploded", "failed")),  # a finished run beats newer ones
    (("exploded", "failed", "killed"), "exploded", ("killed", "failed")),  # then the newest first
    (("failed", "killed"), "killed", ("failed",)),  # neither finished: the newest
])
def test_of_identical_runs_the_completed_then_the_exploded_then_the_newest_counts(tmp_path, statuses, kept, others):
    root = tmp_path / "runs"
    for age, status in enumerate(statuses):
        run_dir = write_run(root, "bn", 8, 0, status, 0.9, run_name=status, rows=[])
        os.utime(run_dir / "summary.json", (time.time() + age, time.time() + age))
    runs, _ = load_runs(root)
    (chosen,), (note,) = deduplicate(runs)
    listed = ", ".join(f"`study/{name}` ({name})" for name in others)
    assert chosen.name == kept and re.fullmatch(
        rf"`study/{kept}` \({kept}\) and {re.escape(listed)} are the same configuration and seed \(science hash "
        r"[0-9a-f]{6}\): counted once, using the first", note)
    write_run(root, "bn", 8, 1, "completed", 0.9, run_name="other_seed", rows=[])  # no twin: kept, no note
    kept_runs, notes = deduplicate(load_runs(root)[0])
    assert sorted(r.name for r in kept_runs) == sorted([kept, "other_seed"]) and notes == [note]


def test_a_value_tied_to_the_batch_size_includes_a_run_that_names_none(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.9, lr=0.1, rows=[])
    no_batch = write_run(root, "bn", 16, 0, "completed", 0.9, lr=0.2, rows=[])
    config = (no_batch / "config.yaml").read_text()
    (no_batch / "config.yaml").write_text(config.replace("    batch_size: 16\n", ""))
    assert "batch_size" not in (no_batch / "config.yaml").read_text()
    runs, _ = load_runs(root)
    assert tied_keys(runs, set())["model.lr"] == {8: 0.1, None: 0.2}


def test_a_key_set_at_one_batch_size_only_is_tied_as_null_at_the_others(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.9, rows=[], model={"norm_options": {"eps": 0.001}})
    write_run(root, "bn", 16, 0, "completed", 0.9, rows=[])
    tied = tied_keys(load_runs(root)[0], set())
    assert tied["model.norm_options.eps"] == {8: 0.001, 16: None}


def test_a_group_title_names_each_fixed_axis_it_shares(tmp_path):
    """Experiment, data set, backbone, then each fixed axis by its short name; a weight decay of 0 is left out."""
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 3, "completed", 0.9, lr=0.3 / 7, rows=[], model={"weight_decay": 5e-4})
    write_run(root, "gn", 16, 0, "completed", 0.9, lr=0.1, rows=[], experiment="other", model={"weight_decay": 0.0})
    other, study = sorted(grouped(load_runs(root)[0]), key=lambda group: group.runs[0].experiment)
    fixed = ("batch_size", "lr", "norm", "seed", "weight_decay")
    assert group_title(study, *fixed) == ("study · fashion_mnist · small_cnn · bs 8 · lr 0.0428571 · norm bn · "
                                          "seed 3 · wd 0.0005")  # floats as %g
    assert group_title(other, *fixed) == "other · fashion_mnist · small_cnn · bs 16 · lr 0.1 · norm gn · seed 0"
    assert group_title(other, "weight_decay", "seed") == "other · fashion_mnist · small_cnn · seed 0"


def test_a_group_title_leaves_out_an_axis_its_runs_differ_in_or_tie_to_the_batch_size(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):  # the seed differs within the group
        write_run(root, "bn", 8, seed, "completed", 0.9, lr=0.1, rows=[])
    for bs, lr in ((16, 0.0125), (128, 0.1)):  # another experiment: lr tied to the batch size
        write_run(root, "gn", bs, 0, "completed", 0.9, lr=lr, rows=[], experiment="scaled")
    groups = {group.runs[0].experiment: group for group in grouped(load_runs(root)[0], "seed", "batch_size")}
    assert group_title(groups["study"], "seed", "lr", "norm") == "study · fashion_mnist · small_cnn · lr 0.1 · norm bn"
    assert group_title(groups["scaled"], "lr", "norm") == "scaled · fashion_mnist · small_cnn · norm gn"


def test_groups_come_by_experiment_then_learning_rate_then_batch_size_as_numbers(tmp_path):
    """The report's sections follow this order: a landscape of batch 8 before those of 32 and 128 (their
    setting digests would order them otherwise), a string batch size after the numbers."""
    root = tmp_path / "runs"
    for bs, lr, experiment in ((128, 0.1, "study"), (32, 0.1, "study"), (8, 0.1, "study"), ("8x", 0.1, "study"),
                               (8, 0.01, "study"), (2, 0.1, "later")):
        for norm in ("bn", "gn"):
            write_run(root, norm, bs, 0, "completed", 0.9, lr=lr, rows=[], experiment=experiment)
    groups = grouped(load_runs(root)[0], "norm", "seed")
    assert [(g.runs[0].experiment, g.runs[0].axis("lr"), g.runs[0].axis("batch_size")) for g in groups] == [
        ("later", 0.1, 2), ("study", 0.01, 8), ("study", 0.1, 8), ("study", 0.1, 32), ("study", 0.1, 128),
        ("study", 0.1, "8x")]


def test_groups_of_one_run_that_read_the_same_are_told_apart_by_their_setting(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "gn", 8, 0, "completed", 0.9, rows=[], run_name="noisy",
              model={"norm_options": {"noise_std": 1.001, "noise_granularity": "group"}})
    write_run(root, "gn", 8, 0, "completed", 0.9, rows=[], run_name="clean", model={"norm_options": None})
    groups = sorted(grouped(load_runs(root)[0], "seed"), key=lambda group: group.runs[0].name)
    assert unique_titles(groups, "norm") == [
        "study · fashion_mnist · small_cnn · norm gn · norm_options null",
        "study · fashion_mnist · small_cnn · norm gn · norm_options {noise_granularity: group, noise_std: 1.001}"]


TITLE = "study · fashion_mnist · small_cnn · norm gn"


def twin_titles(tmp_path, *models: dict) -> list[str]:
    """unique_titles of one-run groups (seed 0, norm gn) whose models differ as given, by run name order."""
    root = tmp_path / "runs"
    for i, model in enumerate(models):
        write_run(root, "gn", 8, 0, "completed", 0.9, rows=[], run_name=f"run{i}", lr=model.pop("lr", 0.1),
                  model={"norm_options": None, **model})
    groups = sorted(grouped(load_runs(root)[0], "seed"), key=lambda group: group.runs[0].name)
    return unique_titles(groups, "norm")


def test_twins_differing_in_two_settings_name_both(tmp_path):
    assert twin_titles(tmp_path, {"norm_groups": 2}, {"norm_groups": 4, "norm_options": {"eps": 0.001}}) == [
        f"{TITLE} · norm_groups 2 · norm_options null", f"{TITLE} · norm_groups 4 · norm_options {{eps: 0.001}}"]


def test_twins_named_by_their_config_hash_when_the_settings_take_over_100_characters_or_none_differs(tmp_path):
    pad = 100 - len("norm_options {pad: }")
    long, longer = twin_titles(tmp_path / "a", {"norm_options": {"pad": "x" * pad}}, {})[0], \
        twin_titles(tmp_path / "b", {"norm_options": {"pad": "x" * (pad + 1)}}, {})[0]
    assert long == f"{TITLE} · norm_options {{pad: {'x' * pad}}}"  # 100 characters: still said
    assert re.fullmatch(rf"{TITLE} · config [0-9a-f]{{8}}", longer)
    by_lr = twin_titles(tmp_path / "c", {"lr": 0.1}, {"lr": 0.2})  # the LR is an axis, not a setting
    assert len(set(by_lr)) == 2 and all(re.fullmatch(rf"{TITLE} · config [0-9a-f]{{8}}", t) for t in by_lr)


def test_a_norm_with_no_finished_seed_has_no_mean(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.9, rows=[])
    write_run(root, "gn", 8, 0, "exploded", None, rows=[])
    table = accuracy_table(load_runs(root)[0], "final_val_acc")
    assert table.mean("bn") == pytest.approx(90.0) and table.mean("gn") is None


def test_nan_and_untrained_results_are_never_numbers(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", math.nan, rows=[])
    write_run(root, "bn", 8, 1, "completed", 0.1, summary={"steps": 0}, rows=[])  # an initialisation's accuracy
    write_run(root, "bn", 32, 0, "completed", 0.9, rows=[])
    write_run(root, "bn", 32, 1, "completed", math.nan, rows=[])
    write_run(root, "gn", 8, 0, "completed", 0.85, rows=[])
    text = report_text(root, tmp_path)
    rows = table_rows(text)
    assert rows[2] == "| 8 | n/a | 85.00 |"
    assert rows[3] == "| 32 | 90.00 ‡ |  |"
    assert rows[4] == "| Mean | 90.00 | 85.00 |"  # the n/a cell is left out
    body = text.replace(str(tmp_path), "")
    cells = [cell.strip().lower() for line in body.splitlines() if line.startswith("|") for cell in line.split("|")]
    assert "10.00" not in cells and "nan" not in cells and "" in cells
    assert "n/a: no seed has a finite value (NaN, or the run took no training step)" in text
    assert "‡: batch size 32, bn: 1 of 2 seeds have no finite value" in text


def test_a_table_and_its_notes_whole_for_every_kind_of_cell():
    """Cells made by hand, one of each kind: every seed exploded, no seed with a value, some exploded, some
    without a value, a plain one and none at all; the markdown compared whole."""
    cells = {(2, "bn"): Cell((), exploded=2), (2, "gn"): Cell((), invalid=1), (8, "bn"): Cell((90.0, 92.0), exploded=1),
             (8, "gn"): Cell((85.0,), invalid=1), (32, "bn"): Cell((94.0,))}
    assert table_markdown(AccuracyTable([2, 8, 32], ["bn", "gn"], cells)) == "\n".join([
        "| Batch size | bn | gn |",
        "|---|---|---|",
        "| 2 | – | n/a |",
        "| 8 | 91.00 ± 1.41 † | 85.00 ‡ |",  # sample std of 90 and 92: √2
        "| 32 | 94.00 |  |",
        "| Mean | 92.50 | 85.00 |",
        "| Variance | 4.50 | – |",  # sample variance of 91 and 94
        "",
        "- Seeds per cell: 1, 2, 3; several seeds: mean ± sample std.",
        "- –: training exploded (every seed); left out of Mean and Variance.",
        "- n/a: no seed has a finite value (NaN, or the run took no training step); left out of Mean and Variance.",
        "- †: batch size 8, bn: 1 of 3 seeds exploded; the others are averaged.",
        "- ‡: batch size 8, gn: 1 of 2 seeds have no finite value (NaN, or no training step); the others are averaged.",
        ""])
    # a seed that exploded beside a finished one is no "–" cell; a plain value is no "n/a" one
    partly = AccuracyTable([8], ["bn", "gn"], {(8, "bn"): Cell((90.0,), exploded=1), (8, "gn"): Cell((80.0,))})
    assert table_markdown(partly, "Batch size \\ layer", summary_rows=False, digits=3).splitlines() == [
        "| Batch size \\ layer | bn | gn |", "|---|---|---|", "| 8 | 90.000 † | 80.000 |", "",
        "- Seeds per cell: 1, 2; several seeds: mean ± sample std.",
        "- †: batch size 8, bn: 1 of 2 seeds exploded; the others are averaged."]
    # the † notes in the rows' order: batch size as a number, then the columns' order (none before bn)
    cells = {(32, "bn"): Cell((90.0,), exploded=1), (32, "none"): Cell((80.0,), exploded=1),
             (8, "bn"): Cell((85.0,), exploded=2)}
    notes = table_markdown(AccuracyTable([8, 32], ["none", "bn"], cells)).split("\n\n")[1].splitlines()
    assert [note.split(":")[1] for note in notes[1:]] == [" batch size 8, bn", " batch size 32, none",
                                                           " batch size 32, bn"]


def test_a_cell_counts_every_seed_without_a_value_and_every_exploded_one(tmp_path):
    root = tmp_path / "runs"
    for seed, status, value in ((0, "completed", math.nan), (1, "completed", math.nan), (2, "completed", 0.9),
                                (3, "exploded", None), (4, "exploded", None), (5, "failed", 0.5)):
        write_run(root, "bn", 8, seed, status, value, rows=[])
    cell = accuracy_table(load_runs(root)[0], "final_val_acc").cells[(8, "bn")]
    assert (cell.values, cell.invalid, cell.exploded, cell.seeds) == ((90.0,), 2, 2, 5)  # the failed run: none


def test_final_lambda_tables_take_finite_numbers_and_order_layers_input_to_output(tmp_path):
    root = tmp_path / "runs"
    lambdas = {"net.features.12": 0.6, "net.features.9": 0.7, "net.features.1": math.nan, "net.classifier": "n/a",
               "net.features.5": None}
    write_run(root, "gn_plus_parallel", 8, 0, "completed", 0.9, rows=[], summary={"lambdas": lambdas})
    (table,) = final_lambda_tables(load_runs(root)[0]).values()
    assert table.norms == ["features.9", "features.12"]  # network order, not string order (features.12 < features.9)
    assert table.cells == {(8, "features.9"): Cell((0.7,)), (8, "features.12"): Cell((0.6,))}


def test_norms_in_the_registry_order_then_unknown_names_alphabetically():
    names = ["zeta", "gn", "custom", "bn", None, "alpha", "none", "mine", "gn", "beta"]
    assert ordered_norms(names) == ["none", "bn", "gn", None, "alpha", "beta", "custom", "mine", "zeta"]


def test_batch_size_rows_in_numeric_order_and_strings_after_the_numbers_in_their_order(tmp_path):
    root = tmp_path / "runs"
    for bs in (32, "8x", 8, "c", 128, "a", "b"):
        write_run(root, "bn", bs, 0, "completed", 0.9, rows=[])
    assert accuracy_table(load_runs(root)[0], "final_val_acc").batch_sizes == [8, 32, 128, "8x", "a", "b", "c"]


def test_a_table_without_values_is_a_sentence(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", math.nan, rows=[])
    write_run(root, "gn", 8, 0, "exploded", None, rows=[])
    write_run(root, "gn", 8, 1, "exploded", None, rows=[])
    text = report_text(root, tmp_path)
    assert "\nNo table: none of its 3 finished runs has a finite final validation accuracy (2 exploded, 1 " \
           "completed without a finite value: NaN, missing, or no training step).\n" in text
    assert "| Batch size |" not in text


def test_a_group_without_a_table_is_a_sentence_between_the_others(tmp_path, drawn):
    root = tmp_path / "runs"
    for lr, value in ((0.01, math.nan), (0.1, 0.9), (0.2, math.nan)):
        for bs in (8, 32):
            write_run(root, "bn", bs, 0, "completed", value, lr=lr, rows=[])
    text = report_text(root, tmp_path)
    section = text[text.index("## Accuracy"):text.index("\n## ", text.index("## Accuracy")) + 1]
    title = "### study · fashion_mnist · small_cnn · lr"
    no_table = ("No table: none of its 2 finished runs has a finite final validation accuracy (0 exploded, 2 completed "
                "without a finite value: NaN, missing, or no training step).")
    assert section.splitlines()[4:] == [
        f"{title} 0.01", "", no_table, "", f"{title} 0.1", "", "| Batch size | bn |", "|---|---|", "| 8 | 90.00 |",
        "| 32 | 90.00 |", "| Mean | 90.00 |", "| Variance | 0.00 |", "", "- Seeds per cell: 1; several seeds: mean ± "
        "sample std.", "", "", f"![{title[4:]} 0.1](accuracy_vs_batch_01.png)", "", f"{title} 0.2", "", no_table, ""]
    (figure,) = drawn[:1]
    assert figure.axes[0].get_ylabel() == "final validation accuracy (%)"


def test_bad_run_files_are_named_in_one_line_and_skipped(tmp_path, capsys):
    root = tmp_path / "runs"
    good = write_run(root, "bn", 8, 0, "completed", 0.9, run_name="good", rows=[])
    garbage = write_run(root, "bn", 8, 1, "completed", 0.8, run_name="garbage_metrics", rows=[])
    (garbage / "metrics.csv").write_bytes(b"epoch,step,train/loss\n0,1,\xff\xfe\x00zz\n")
    empty = write_run(root, "gn", 8, 0, "completed", 0.7, run_name="empty_config", rows=[])
    (empty / "config.yaml").write_text("")
    listed = write_run(root, "gn", 8, 1, "completed", 0.7, run_name="list_summary", rows=[])
    (listed / "summary.json").write_text("[]")
    text = report_text(root, tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("normlab: ") for line in err)
    assert f"normlab: skipped {empty}: config.yaml is empty" in err
    assert f"normlab: skipped {listed}: summary.json holds list '[]', not a mapping of results" in err
    assert any(line.startswith(f"normlab: no curves for {garbage}: ") and "metrics.csv" in line for line in err)
    assert "## Run files left out" in text and f"skipped {empty}: config.yaml is empty" in text
    assert table_rows(text)[2] == "| 8 | 85.00 ± 7.07 |"  # the run with a bad metrics.csv still counts
    assert good.name in text


def test_a_directory_of_bad_runs_only_is_one_error(tmp_path, capsys):
    bad = write_run(tmp_path / "runs", "bn", 8, 0, "completed", 0.9, rows=[])
    (bad / "config.yaml").write_text(": not yaml: [")
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "runs")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"normlab: error: no run directories (with summary.json and config.yaml) under "
                          f"{tmp_path / 'runs'}; skipped {bad}: config.yaml is not valid YAML") and "\n" not in err


def test_report_files_are_replaced_atomically(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for bs in (8, 32):
        write_run(root, "bn", bs, 0, "completed", 0.9, rows=[])
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    before = {path: path.read_bytes() for path in out.iterdir()}
    assert out / "accuracy_vs_batch_00.png" in before

    def dies_half_way(self, target, **kwargs):
        target.write(b"\x89PNG half a figure")
        raise KeyboardInterrupt

    write_run(root, "gn", 8, 0, "completed", 0.5, rows=[])
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        main(["report", str(root), "--out", str(out)])
    assert {path: path.read_bytes() for path in out.iterdir()} == before  # no torn file, no temporary left



def test_tables_that_differ_only_in_a_norm_option_are_titled_by_that_option(tmp_path):
    # The output-noise study: the same norms, lr and batch, with noise off (norm_options null), on every
    # element, or per group. The headings must say which is which, not show a config hash.
    root = tmp_path / "runs"
    options = [None, {"noise_granularity": "element", "noise_std": 1.001},
               {"noise_granularity": "group", "noise_std": 1.001}]
    for i, norm_options in enumerate(options):
        for norm in ("bn", "gn"):
            write_run(root, norm, 128, 0, "completed", 0.8, rows=[], model={"norm_options": norm_options},
                      run_name=f"{norm}_noise{i}")
    headings = [line for line in report_text(root, tmp_path).splitlines() if line.startswith("### study ·")]
    assert headings == [
        "### study · fashion_mnist · small_cnn · lr 0.1 · norm_options null",
        "### study · fashion_mnist · small_cnn · lr 0.1 · norm_options {noise_granularity: element, noise_std: 1.001}",
        "### study · fashion_mnist · small_cnn · lr 0.1 · norm_options {noise_granularity: group, noise_std: 1.001}"]
