"""Every key of the real `fit` parser and every callback option is classified (lightning_app/run/science.py),
and the classification is what a run's name hashes.

The keys come from NormlabCLI's own parser, the data modules' and the callbacks' init_args from their
signatures: a new key, a new option of a data module or of a callback fails here, naming it, until it
is classified. The run names are computed by the sweep planner, the CLI's own naming code.
"""
import hashlib
import inspect
import json

import pytest

from callbacks.compat import parser_actions, subcommand_parsers
from datamodules import DATAMODULES
from lightning_app.cli import NormlabCLI
from lightning_app.run.identity import get_dotted, science_config, science_hash
from lightning_app.run.science import (CALLBACK, CALLBACKS, KEYS, NOT_SCIENCE, SCIENCE, ScienceUnless, callback_science,
                                       classification)
from lightning_app.sweep.cli_planner import RunPlanner
from tests.helpers import ROOT


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


class _ParserOnly(NormlabCLI):
    def parse_arguments(self, parser, args):
        raise _Captured(parser)


def fit_parser():
    with pytest.raises(_Captured) as captured:
        _ParserOnly(args=["fit"])
    return subcommand_parsers(captured.value.parser)["fit"]


def init_options(cls) -> list[str]:
    """The keyword options of `cls`'s constructor, those it passes on through **kwargs included."""
    options = []
    for klass in cls.__mro__:
        parameters = inspect.signature(klass.__init__).parameters.values()
        options += [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return options
    return options


def parser_keys() -> list[str]:
    """Every key a `fit` config can hold: the parser's own (a section's name is not a key, its keys are),
    and under `data` the class path and every data module's options."""
    dests = [a.dest for a in parser_actions(fit_parser()) if a.dest != "help" and not a.dest.endswith(".help")]
    keys = [d for d in dests if not any(other.startswith(d + ".") for other in dests) and d != "data"]
    keys += ["data.class_path"] + [f"data.init_args.{option}" for cls in DATAMODULES.values()
                                    for option in init_options(cls)]
    return sorted(set(keys))


def test_every_key_of_the_parser_is_classified():
    keys = parser_keys()
    assert {"trainer.max_epochs", "model.lr", "explosion", "data.init_args.use_extra"} <= set(keys)  # the walk works
    unclassified = [key for key in keys if classification(key) is None]
    assert unclassified == [], f"classify these keys in lightning_app/run/science.py: {unclassified}"
    stale = sorted(set(KEYS) - set(keys))
    assert stale == [], f"lightning_app/run/science.py classifies keys no parser has: {stale}"


@pytest.mark.parametrize("key", sorted(CALLBACKS))
def test_every_callback_option_is_classified(key):
    callback = CALLBACKS[key]
    assert KEYS[key] == CALLBACK
    options = init_options(callback.cls)
    unclassified = [option for option in options if option not in callback.options]
    assert unclassified == [], f"classify {callback.cls.__name__}'s options in lightning_app/run/science.py: {unclassified}"
    assert sorted(set(callback.options) - set(options)) == [], f"{callback.cls.__name__} has no such options"


def test_every_classification_is_one_of_the_classes():
    kinds = [*KEYS.values(), *(kind for callback in CALLBACKS.values() for kind in callback.options.values())]
    assert all(kind in (SCIENCE, NOT_SCIENCE, CALLBACK) or isinstance(kind, ScienceUnless) for kind in kinds)
    assert {key for key, kind in KEYS.items() if kind == CALLBACK} == {*CALLBACKS, "trainer.callbacks"}


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    planner = None

    def name(*args: str) -> str:
        nonlocal planner
        full = ["--config", str(ROOT / "configs/quickstart.yaml"), "--trainer.default_root_dir", str(root), *args]
        planner = planner or RunPlanner(full, "test")
        return planner.run_dir_of(full, {}, "test").name
    return name


DETECTOR = ["--explosion", "callbacks.explosion.ExplosionDetector"]


@pytest.mark.parametrize("args", [
    DETECTOR + ["--explosion.spike_action", "stop"],
    DETECTOR + ["--explosion.action", "skip_step"],
    DETECTOR + ["--explosion.spike_factor", "20"],
    ["--config", str(ROOT / "configs/presets/explosion.yaml")],
    ["--trainer.max_time", "00:00:10:00"],
    ["--trainer.overfit_batches", "4"],
    ["--trainer.callbacks+=callbacks.explosion.ExplosionDetector", "--trainer.callbacks.spike_action", "stop"],
    ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/acc"],  # a class classified nowhere
])
def test_what_changes_training_changes_the_run_name(names, args):
    assert names(*args) != names()


@pytest.mark.parametrize("args", [
    DETECTOR,
    DETECTOR + ["--explosion.spike_action", "warn", "--explosion.spike_factor", "10"],  # its defaults, spelt out
    DETECTOR + ["--explosion.grad_norm_every_n_steps", "5"],  # logging only
    ["--trainer.callbacks+=callbacks.explosion.ExplosionDetector"],  # the automatic detector, listed by hand
    ["--config", str(ROOT / "configs/presets/lambda.yaml"), "--config", str(ROOT / "configs/presets/landscape.yaml")],
    ["--trainer.devices", "1", "--trainer.log_every_n_steps", "7", "--data.init_args.num_workers", "2"],
])
def test_what_does_not_change_training_keeps_the_run_name(names, args):
    assert names(*args) == names()


# The science keys every run name was hashed from before the classification (the code of commit dd22018).
LEGACY_KEYS = ("model", "data", "seed_everything", "trainer.max_epochs", "trainer.max_steps", "trainer.precision",
               "trainer.accumulate_grad_batches", "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm",
               "trainer.sync_batchnorm", "trainer.limit_train_batches")
LEGACY_NOT_DATA = {"data_dir", "download", "num_workers", "pin_memory", "persistent_workers", "eval_batch_size",
                   "on_device"}


def legacy_hash(cfg: dict) -> str:
    selected = {key: get_dotted(cfg, key) for key in LEGACY_KEYS}
    data = dict(selected["data"] or {})
    data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if k not in LEGACY_NOT_DATA}
    selected["data"] = data
    selected = json.loads(json.dumps(selected, default=str))
    return hashlib.sha1(json.dumps(selected, sort_keys=True).encode()).hexdigest()[:6]


CONFIGS = sorted((ROOT / "configs" / "experiments").glob("*.yaml")) + [ROOT / "configs/quickstart.yaml"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_run_names_change_exactly_where_a_newly_classified_key_counts(config, tmp_path):
    """A shipped config keeps its run name unless a key classified as science only now counts in it
    (batch_size_study.yaml: `explosion.action: warn`, where the default stops a non-finite run)."""
    planner = RunPlanner(["--config", str(config)], "test")
    planner.run_dir_of(["--config", str(config), "--trainer.default_root_dir", str(tmp_path)], {}, "test")
    dumped = planner._dumped_config(planner.config)
    new_science = sorted(set(science_config(dumped)) - set(LEGACY_KEYS))
    assert (science_hash(dumped) == legacy_hash(dumped)) == (new_science == []), new_science
    assert new_science == (["explosion"] if config.stem == "batch_size_study" else [])


def test_each_callback_is_named_by_the_import_path_of_its_class():
    """CALLBACKS names classes by path (so that reading runs imports no callback): each path loads the
    class it names, and a config's class_path of that class is found."""
    for key, callback in CALLBACKS.items():
        cls = callback.cls
        assert f"{cls.__module__}.{cls.__name__}" == callback.class_path, key
        assert callback_science({"class_path": callback.class_path, "init_args": {}}) is None, key
