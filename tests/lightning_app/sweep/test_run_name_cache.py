"""The sweep planner's run-name cache gives the very names the CLI's parser gives, and is consulted only
while nothing the parser reads has changed (arguments, the config files they name, the code).

The reference is the planner itself: a plan made with an empty cache (every name from NormlabCLI's
parser), against the same plan read back from the cache with the parser made unusable.
"""
import os
import sys
from pathlib import Path

import pytest

from lightning_app.sweep import cli_planner, run_name_cache
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd


def make_sweep(tmp_path, base: str = "configs/quickstart.yaml", grid: str = "  model.norm: [bn, gn]\n"
               "  data.init_args.batch_size, model.lr: [[8, 0.001], [128, 0.01]]\n") -> str:
    path = tmp_path / "names.yaml"
    path.write_text(f"config: {base}\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                    f"grid:\n{grid}seeds: [0, 1]\n")
    return str(path)


def plan(sweep: str) -> list[tuple]:
    return [(run.run_dir, run.accelerator, run.devices, run.args) for run in plan_sweep(load_sweep(sweep))]


@pytest.fixture
def parses(monkeypatch) -> list[list[str]]:
    """The argument lists the CLI's parser was asked to name (it still names them)."""
    asked = []
    name = cli_planner.RunPlanner.name

    def counted(self, args, point, where):
        asked.append(args)
        return name(self, args, point, where)

    monkeypatch.setattr(cli_planner.RunPlanner, "name", counted)
    return asked


def test_a_second_plan_takes_every_name_from_the_cache_and_they_are_the_parsers(tmp_path, parses, monkeypatch):
    sweep = make_sweep(tmp_path)
    parsed = plan(sweep)
    assert len(parses) == len(parsed) == 8
    monkeypatch.setattr(cli_planner, "RunPlanner", None)  # a plan that needs the parser now fails
    assert plan(sweep) == parsed
    assert len({run_dir for run_dir, *_ in parsed}) == 8 and all(d.parent.name == "names" for d, *_ in parsed)


def test_a_changed_config_file_is_parsed_again(tmp_path, parses):
    base = tmp_path / "base.yaml"
    base.write_text((ROOT / "configs/quickstart.yaml").read_text())
    sweep = make_sweep(tmp_path, base=str(base), grid="  model.norm: [bn, gn]\n")
    before = plan(sweep)
    base.write_text(base.read_text().replace("weight_decay: 0.0", "weight_decay: 0.001"))  # science: new names
    after = plan(sweep)
    assert len(parses) == 2 * len(before) == 8
    assert all(a[0] != b[0] for a, b in zip(after, before))
    assert after == plan(sweep) and len(parses) == 8  # the new names are kept in turn



def test_a_changed_config_given_as_key_equals_path_is_parsed_again(tmp_path, parses):
    """`--config=<file>` after `--` names its file after the first '=' (a file name may hold one too): its
    content is part of the key too."""
    extra = tmp_path / "extra=1.yaml"
    extra.write_text("model:\n  weight_decay: 0.0\n")
    spec = load_sweep(make_sweep(tmp_path, grid="  model.norm: [bn]\n"))
    before = [run.run_dir for run in plan_sweep(spec, [f"--config={extra}"])]
    extra.write_text("model:\n  weight_decay: 0.001\n")  # science: new names
    after = [run.run_dir for run in plan_sweep(spec, [f"--config={extra}"])]
    assert len(parses) == 4 and set(before).isdisjoint(after)


def test_another_code_version_is_parsed_again_and_replaces_the_older_cache(tmp_path, parses, monkeypatch):
    sweep = make_sweep(tmp_path, grid="  model.norm: [bn]\n")
    first = plan(sweep)
    old_files = list(run_name_cache.cache_dir().iterdir())
    monkeypatch.setattr(run_name_cache, "code_version", lambda: "another-version")
    assert plan(sweep) == first and len(parses) == 4  # 2 runs, parsed twice
    assert [p.name for p in run_name_cache.cache_dir().iterdir()] == ["sweep-run-names-another-version.json"]
    assert len(old_files) == 1 and not old_files[0].exists()


def test_the_code_version_changes_with_a_parsing_librarys_version(monkeypatch):
    before = run_name_cache.code_version()
    version = run_name_cache.metadata.version
    monkeypatch.setattr(run_name_cache.metadata, "version",
                        lambda name: "999.0" if name == "jsonargparse" else version(name))
    assert run_name_cache.code_version() != before


def test_the_code_version_changes_with_the_source(tmp_path, monkeypatch):
    package = tmp_path / "callbacks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))  # a stand-in for one of normlab's packages
    monkeypatch.setattr(run_name_cache, "PACKAGES", ("callbacks",))
    monkeypatch.delitem(sys.modules, "callbacks", raising=False)
    version = run_name_cache.code_version()
    (package / "more.py").write_text("X = 1\n")
    assert run_name_cache.code_version() != version


def test_a_cache_that_cannot_be_written_or_read_only_costs_time(tmp_path, parses, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(not_a_dir))
    sweep = make_sweep(tmp_path, grid="  model.norm: [bn]\n")
    assert plan(sweep) == plan(sweep) and len(parses) == 4  # parsed both times, no error
    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(tmp_path / "cache"))
    expected = plan(sweep)
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_text("{ truncated")
    assert plan(sweep) == expected and len(parses) == 8  # the unreadable file: parsed again
    cache_file.write_text("[1, 2]")
    assert plan(sweep) == expected and len(parses) == 10  # JSON, but not the cache's mapping: parsed again


def test_a_plan_that_parses_nothing_new_leaves_the_cache_file_alone(tmp_path, parses):
    sweep = make_sweep(tmp_path, grid="  model.norm: [bn]\n")
    plan(sweep)
    (cache_file,) = Path(os.environ["NORMLAB_CACHE_DIR"]).iterdir()
    before = cache_file.stat()
    plan(sweep)
    after = cache_file.stat()
    assert len(parses) == 2 and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_cache_folder_that_does_not_exist_yet_is_made_with_its_parents(tmp_path, parses, monkeypatch):
    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(tmp_path / "new" / "cache" / "normlab"))
    sweep = make_sweep(tmp_path, grid="  model.norm: [bn]\n")
    plan(sweep)
    (cache_file,) = (tmp_path / "new/cache/normlab").iterdir()
    assert cache_file.name.startswith(run_name_cache.CACHE_PREFIX)
    plan(sweep)
    assert len(parses) == 2  # seeds 0 and 1, parsed once


def test_the_cache_folder_follows_normlab_cache_dir_then_xdg_then_home(tmp_path, monkeypatch):
    """The XDG Base Directory rule: $XDG_CACHE_HOME, else ~/.cache; $NORMLAB_CACHE_DIR before both."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NORMLAB_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert run_name_cache.cache_dir() == tmp_path / "home" / ".cache" / "normlab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert run_name_cache.cache_dir() == tmp_path / "xdg" / "normlab"
    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(tmp_path / "own"))
    assert run_name_cache.cache_dir() == tmp_path / "own"


def test_a_value_named_like_a_config_file_that_is_none_is_only_a_value(tmp_path, parses):
    """A run root called `runs.yaml` that does not exist yet is a value like any other, not a file to read."""
    sweep = tmp_path / "names.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs.yaml'}}}\n"
                     "grid:\n  model.norm: [bn]\n")
    first = plan(str(sweep))
    assert plan(str(sweep)) == first and len(parses) == 1
    assert first[0][0].parent.parent == tmp_path / "runs.yaml"


def test_a_config_named_inside_a_config_is_part_of_the_key(tmp_path, parses):
    """A base config whose `model:` is the path of another config file: that file's content counts too
    (the base also holds a list, which the search for file names walks through)."""
    model = tmp_path / "model.yaml"
    model.write_text("backbone: small_cnn\nnorm: gn\nnorm_groups: 4\nlr: 0.003\nweight_decay: 0.0\n")
    base = tmp_path / "base.yaml"
    base.write_text(f"model: {model}\nactivation_stats:\n"
                    "  class_path: callbacks.activation_stats.ActivationStatistics\n  init_args: {channels: [0, 5]}\n")
    sweep = make_sweep(tmp_path, base=f"[configs/quickstart.yaml, {base}]", grid="  model.lr: [0.003]\n")
    before = plan(sweep)
    model.write_text(model.read_text().replace("weight_decay: 0.0", "weight_decay: 0.001"))  # science: a new name
    after = plan(sweep)
    assert len(parses) == 4 and {b[0] for b in before}.isdisjoint(a[0] for a in after)


def test_a_file_that_is_no_config_is_keyed_by_its_path_only(tmp_path, parses):
    """Any other file an argument names (here a data folder given as a file) is not read: a new content
    leaves the name to the cache."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"first")
    spec = load_sweep(make_sweep(tmp_path, grid="  model.norm: [bn]\n"))
    first = [run.run_dir for run in plan_sweep(spec, ["--data.init_args.data_dir", str(blob)])]
    blob.write_bytes(b"second")
    assert [run.run_dir for run in plan_sweep(spec, ["--data.init_args.data_dir", str(blob)])] == first
    assert len(parses) == 2  # seeds 0 and 1, parsed once
