"""The figure tests' shared fixture: what the report's plot functions draw, kept as figures."""
import matplotlib.pyplot as plt
import pytest

from lightning_app.report import activation_figures, batch_figures, figures, lr_bands


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save, in drawing order (saving a PNG is test_report.py's
    business): a test reads the plotted series back by their gids."""
    saved = []

    def keep(fig, path):
        saved.append(fig)
        return path

    replace_save_figure(monkeypatch, keep)
    yield saved
    plt.close("all")


@pytest.fixture
def figure_files(monkeypatch):
    """The plot functions write a stand-in file where the PNG would go, without rendering it: for tests of
    which files a report leaves in its folder, not of what they show."""
    def stand_in(fig, path):
        path.write_bytes(b"a figure")
        plt.close(fig)
        return path

    replace_save_figure(monkeypatch, stand_in)


def replace_save_figure(monkeypatch, save) -> None:
    """`save` in place of `save_figure` in every module of the report that draws."""
    for module in (figures, batch_figures, lr_bands, activation_figures):
        monkeypatch.setattr(module, "save_figure", save)
