import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")

from tests.fakedata import write_fake_mnist  # noqa: E402
from datamodules import FashionMNISTDataModule  # noqa: E402
from tests.helpers import ROOT  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """The cluster tier runs only when `-m` names it (make test-cluster: `-m cluster`): it needs a SLURM
    cluster, which tools/slurm_cluster.sh brings up as root. Deselected tests are counted in the summary."""
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    cluster = [item for item in items if item.get_closest_marker("cluster")]
    if cluster:
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]


@pytest.fixture(autouse=True)
def own_run_name_cache(tmp_path_factory, monkeypatch):
    """Each test plans sweeps with its own, empty run-name cache (lightning_app/sweep/run_name_cache.py):
    names a test's parser gave never answer another test, and the user's cache is left alone."""
    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(tmp_path_factory.mktemp("run-name-cache")))


@pytest.fixture
def fake_mnist_dir(tmp_path):
    """A folder with tiny MNIST-format IDX files (gzipped), as torchvision or Debian ship them."""
    folder = tmp_path / "fake_mnist"
    write_fake_mnist(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(request, tmp_path_factory):
    """Tiny MNIST-format files shared by all tests of a module. A module whose runs need a particular number
    of samples sets FAKE_MNIST_SIZES, the n_train/n_test keywords of write_fake_mnist."""
    folder = tmp_path_factory.mktemp("mnist")
    write_fake_mnist(folder, **getattr(request.module, "FAKE_MNIST_SIZES", {}))
    return folder


@pytest.fixture
def run_from_repo_root(monkeypatch):
    """Run the test from the repository root: config paths in sweeps and presets are relative to the cwd.
    Modules that need it ask with `pytestmark = pytest.mark.usefixtures("run_from_repo_root")`."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def system_fashion_mnist() -> Path:
    """Debian's Fashion-MNIST (`dataset-fashion-mnist`), where FashionMNISTDataModule looks by default.
    `make test` installs it (`make data`); without it the test fails saying so, never skips unseen."""
    folder = Path(FashionMNISTDataModule.system_dirs[0])
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{folder} lacks Debian's Fashion-MNIST: run `make data` "
                    "(apt-get install dataset-fashion-mnist)")
    return folder
