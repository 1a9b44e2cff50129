"""The sweep file format: grid expansion (products, keys varied together, unions, seeds), the values'
trip through the command line (checked against PyYAML, the parser the CLI reads values with), and the
one-line errors for malformed files."""
import datetime
import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lightning_app.sweep.spec import format_cli_value, load_sweep

ROOT_CONFIG = "configs/quickstart.yaml"


def write_sweep(tmp_path, text: str):
    path = tmp_path / "my_sweep.yaml"
    path.write_text(text)
    return path


pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd


def test_product_zip_union_and_seeds_expand_in_order(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, f"""
config: {ROOT_CONFIG}
args: {{trainer.max_epochs: 2}}
grid:
  - model.norm: [bn, gn]
    data.init_args.batch_size, model.lr: [[16, 0.0125], [128, 0.1]]
  - model.norm: [gn_plus_gn_first]
    model.norm_options: [{{lambda_init: 0.5}}]
seeds: [0, 7]
"""))
    expected = []
    for seed in (0, 7):
        for norm in ("bn", "gn"):
            for bs, lr in ((16, 0.0125), (128, 0.1)):
                expected.append({"model.norm": norm, "data.init_args.batch_size": bs, "model.lr": lr,
                                 "seed_everything": seed})
        expected.append({"model.norm": "gn_plus_gn_first", "model.norm_options": {"lambda_init": 0.5},
                         "seed_everything": seed})
    assert spec.points() == expected
    assert spec.experiment == "my_sweep"  # default: the sweep file's name
    args = spec.run_args(expected[0], ["--trainer.max_epochs", "1"])
    assert args == ["--config", ROOT_CONFIG, "--experiment", "my_sweep", "--trainer.max_epochs", "2",
                    "--model.norm", "bn", "--data.init_args.batch_size", "16", "--model.lr", "0.0125",
                    "--seed_everything", "0", "--trainer.max_epochs", "1"]  # extra arguments come last and win
    assert not spec.is_cartesian()


def test_no_grid_is_one_run_of_the_base_config(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, f"config: [{ROOT_CONFIG}]\nexperiment: solo\n"))
    assert spec.points() == [{}] and spec.is_cartesian()
    assert spec.run_args({}) == ["--config", ROOT_CONFIG, "--experiment", "solo"]


@given(st.floats(allow_nan=False, allow_infinity=True, width=64))
def test_floats_survive_the_command_line(value):
    assert yaml.safe_load(format_cli_value(value)) == value


@pytest.mark.parametrize("value", [
    1e-05, 5e-4, 0.1 * 8 / 128, 3, -2, True, False, None, "gn_plus_gn_first", "none",
    {"noise_mean": 1e-3, "noise_std": 1.001, "noise_granularity": "element"},
    [81, 122], {"nested": {"eps": 1e-5, "flag": None}},
])
def test_values_survive_the_command_line(value):
    assert yaml.safe_load(format_cli_value(value)) == value


@pytest.mark.parametrize("value,word", [(None, "null"), (True, "true"), (False, "false"), (float("inf"), ".inf"),
                                        (float("-inf"), "-.inf"), (1e-05, "1.0e-05")])
def test_a_value_is_written_as_yaml_spells_it_in_lower_case(value, word):
    """The words the plan prints (`model.norm_options=null`), the W&B file and the SLURM script carry."""
    assert format_cli_value(value) == word


def test_nan_survives_the_command_line():
    word = format_cli_value(float("nan"))
    assert word == ".nan" and math.isnan(yaml.safe_load(word))



def test_a_value_is_one_line_and_tuples_are_lists():
    """A value is one command-line word: no line break however long; a tuple (the grid's rows are tuples)
    is written as the YAML list it stands for."""
    long = [0.001] * 40
    assert format_cli_value(long) == "[" + ", ".join(["0.001"] * 40) + "]"
    assert format_cli_value((1, (2, 3))) == "[1, [2, 3]]" and format_cli_value({"a": (1,)}) == "{a: [1]}"


@pytest.mark.parametrize("value,kind", [(datetime.date(2024, 1, 2), "date"), ({1, 2}, "set")])
def test_a_value_the_command_line_cannot_carry_is_refused_by_its_type(value, kind):
    with pytest.raises(ValueError) as info:
        format_cli_value(value)
    assert str(info.value) == (f"sweep value {value!r} has type {kind}; allowed: str, int, float, bool, null, lists "
                               "and mappings of those")


@pytest.mark.parametrize("grid,cartesian", [
    ("grid: {model.norm: [bn, gn], model.lr: [0.1, 0.2]}", True),  # W&B's grid sweep expresses it directly
    ("grid: {model.norm: [bn, gn], 'data.init_args.batch_size, model.lr': [[16, 0.0125], [128, 0.1]]}", False),
    ("grid: [{model.norm: [bn]}, {model.norm: [gn]}]", False),
])
def test_only_one_grid_of_single_keys_is_cartesian(tmp_path, grid, cartesian):
    assert load_sweep(write_sweep(tmp_path, f"config: {ROOT_CONFIG}\n{grid}\n")).is_cartesian() is cartesian


def test_the_launchers_settings_and_the_experiment_name_are_kept(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, f"config: {ROOT_CONFIG}\nexperiment: study\nslurm: {{gpus: 2}}\n"
                                            "wandb: {project: p}\n"))
    assert (spec.experiment, spec.slurm, spec.wandb, spec.seeds) == ("study", {"gpus": 2}, {"project": "p"}, None)
    assert spec.configs == (ROOT_CONFIG,) and spec.args == {}

KEYS = "experiment, config, args, grid, seeds, slurm, wandb"
GRID = "'grid' must be a mapping (key -> list of values) or a list of mappings"
CONFIG = "'config' must name a base config file or a list of them, got"
BOTH = "set the seed with 'seeds' or with seed_everything in grid/args, not both"


@pytest.mark.parametrize("body,message", [
    (f"config: {ROOT_CONFIG}\ngrids: {{}}\n", f"unknown sweep key(s) ['grids']; allowed: {KEYS}"),
    ("- a\n- b\n", f"a sweep file is a mapping with keys {KEYS}"),
    ("grid: {model.norm: [bn]}\n", f"{CONFIG} None"),
    ("", f"{CONFIG} None"),
    (f"config: [{ROOT_CONFIG}, 3]\n", f"{CONFIG} ['{ROOT_CONFIG}', 3]"),
    ("config: configs/nope.yaml\n", "base config configs/nope.yaml does not exist (paths are relative to the "
                                    "directory you run `lightning sweep` from)"),
    (f"config: {ROOT_CONFIG}\nargs: [1]\n", "'args' must map dotted config keys to values, got [1]"),
    (f"config: {ROOT_CONFIG}\ngrid: 3\n", GRID),
    (f"config: {ROOT_CONFIG}\ngrid: [{{model.norm: [bn]}}, 3]\n", GRID),
    (f"config: {ROOT_CONFIG}\ngrid: {{model.norm: bn}}\n", "grid: 'model.norm' must have a non-empty list of values, "
                                                          "got 'bn'"),
    (f"config: {ROOT_CONFIG}\ngrid: [{{model.norm: [bn]}}, {{model.lr: []}}]\n",
     "grid[1]: 'model.lr' must have a non-empty list of values, got []"),
    (f"config: {ROOT_CONFIG}\ngrid: {{'a.b, c.d': [[1, 2], [3]]}}\n",
     "grid: 'a.b, c.d' varies 2 keys together, so each value must be a list of 2; got [3]"),
    (f"config: {ROOT_CONFIG}\ngrid: {{'a.b, a.b': [[1, 2]]}}\n", "grid: key 'a.b, a.b' is empty or repeats a key of "
                                                               "this grid"),
    (f"config: {ROOT_CONFIG}\ngrid: {{'a.b,': [[1, 2]]}}\n", "grid: key 'a.b,' is empty or repeats a key of this grid"),
    (f"config: {ROOT_CONFIG}\ngrid: {{'a.b, c.d': [[1, 2]], c.d: [3]}}\n",
     "grid: key 'c.d' is empty or repeats a key of this grid"),
    (f"config: {ROOT_CONFIG}\ngrid: {{'a.b, c.d': [[1, 2]], e.f: [3], c.d: [4]}}\n",
     "grid: key 'c.d' is empty or repeats a key of this grid"),
    ("config: [a\n", "YAML syntax error at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
    (f"config: {ROOT_CONFIG}\nconfig: {ROOT_CONFIG}\n", "duplicate key 'config' at lines 1 and 2; YAML keeps only the "
                                                        "last of them, so delete or merge one"),
    (f"config: {ROOT_CONFIG}\nseeds: [0]\ngrid: {{seed_everything: [1]}}\n", BOTH),
    (f"config: {ROOT_CONFIG}\nseeds: [0]\ngrid: [{{model.norm: [bn]}}, {{seed_everything: [1]}}]\n", BOTH),
    (f"config: {ROOT_CONFIG}\nseeds: [0]\nargs: {{seed_everything: 1}}\n", BOTH),
    (f"config: {ROOT_CONFIG}\nseeds: 3\n", "'seeds' must be a non-empty list of integers, got 3"),
    (f"config: {ROOT_CONFIG}\nseeds: []\n", "'seeds' must be a non-empty list of integers, got []"),
    (f"config: {ROOT_CONFIG}\nseeds: [0, true]\n", "'seeds' must be a non-empty list of integers, got [0, True]"),
    (f"config: {ROOT_CONFIG}\nseeds: [0, 1.5]\n", "'seeds' must be a non-empty list of integers, got [0, 1.5]"),
    (f"config: {ROOT_CONFIG}\nslurm: [1]\n", "'slurm' must be a mapping of settings, got [1]"),
    (f"config: {ROOT_CONFIG}\nwandb: 3\n", "'wandb' must be a mapping of settings, got 3"),
    (f"config: {ROOT_CONFIG}\nexperiment: a/b\n", "'experiment' must be a plain name (no '/'), got 'a/b'"),
    (f"config: {ROOT_CONFIG}\nexperiment: 5\n", "'experiment' must be a plain name (no '/'), got 5"),
    (f"config: {ROOT_CONFIG}\nexperiment: .hidden\n", "experiment='.hidden' must be a single directory name (no "
     "'/', not '.' or '..', not starting with '.'); the run root is trainer.default_root_dir"),
])
def test_malformed_sweep_files_fail_with_one_clear_line(tmp_path, body, message):
    path = write_sweep(tmp_path, body)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_sweep(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_missing_sweep_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_sweep(tmp_path / "nope.yaml")
    assert str(info.value) == f"sweep file {tmp_path / 'nope.yaml'} does not exist"
