"""A YAML mapping with the same key twice is refused, naming the key and both lines: YAML (and PyYAML)
would silently keep the last one, so `model: {norm: bn, lr: 0.01}` followed by `model: {norm: gn}`
trained gn at the default lr, and a sweep file with two `grid:` keys planned 2 runs instead of 6."""
import pytest

from lightning_app.command import main
from lightning_app.sweep.command import main as sweep_main
from tests.helpers import error_line, tiny_args

pytestmark = pytest.mark.usefixtures("run_from_repo_root")


@pytest.mark.parametrize("text,key,lines", [
    ("model:\n  norm: bn\n  lr: 0.01\nmodel:\n  norm: gn\n", "model", (1, 4)),
    ("model:\n  norm: bn\n  lr: 0.01\n  norm: gn\n", "model.norm", (2, 4)),
    ("model: {norm: bn, norm: gn}\n", "model.norm", (1, 1)),
    ("grid:\n  - a: [1]\n    a: [2]\n", "grid[0].a", (2, 3)),
])
def test_a_duplicate_key_is_named_with_both_lines(text, key, lines):
    from lightning_app.yaml_files import load_yaml

    with pytest.raises(ValueError) as info:
        load_yaml(text, "f.yaml")
    assert str(info.value) == (f"f.yaml: duplicate key '{key}' at lines {lines[0]} and {lines[1]}; YAML keeps only "
                               "the last of them, so delete or merge one")


def test_keys_that_only_look_alike_are_two_keys():
    """An int and a str key (or a key in two different mappings) are two keys to YAML: not refused."""
    from lightning_app.yaml_files import load_yaml

    assert load_yaml("1: x\n'1': y\nm: {a: 1}\nn: {a: 2}\n", "f.yaml") == {1: "x", "1": "y", "m": {"a": 1}, "n": {"a": 2}}


def test_a_config_with_a_duplicate_key_trains_nothing(fake_mnist_dir, tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("model:\n  norm: bn\n  lr: 0.01\nmodel:\n  norm: gn\n")
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, "--config", str(config))))
    assert message == f"{config}: duplicate key 'model' at lines 1 and 4; YAML keeps only the last of them, " \
                      "so delete or merge one"
    assert not root.exists()


def test_a_data_config_file_given_to_a_key_is_checked_too(fake_mnist_dir, tmp_path, capsys):
    """`--data FILE` is read by jsonargparse itself, not as a --config: its loader is normlab's."""
    data = tmp_path / "data.yaml"
    data.write_text(f"class_path: datamodules.MNISTDataModule\ninit_args:\n  data_dir: {fake_mnist_dir}\n"
                    "  batch_size: 32\n  batch_size: 16\n")
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, "--data", str(data))))
    assert "duplicate key 'init_args.batch_size' at lines 4 and 5" in message
    assert not root.exists()


def test_a_command_line_value_with_a_duplicate_key_is_refused(fake_mnist_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, "--model.norm_options",
                                                        "{eps: 0.1, eps: 0.2}")))
    assert message.startswith("value '{eps: 0.1, eps: 0.2}': duplicate key 'eps' at lines 1 and 1")
    assert not root.exists()


def test_a_sweep_file_with_two_grids_plans_nothing(tmp_path, capsys):
    sweep = tmp_path / "two_grids.yaml"
    sweep.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                     "grid:\n  model.norm: [bn, gn]\nseeds: [0]\ngrid:\n  model.lr: [0.1, 0.01, 0.001]\n")
    message = error_line(capsys, lambda: sweep_main(["--config", str(sweep), "--dry-run"]))
    assert message == f"{sweep}: duplicate key 'grid' at lines 3 and 6; YAML keeps only the last of them, " \
                      "so delete or merge one"
