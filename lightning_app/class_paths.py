"""Which modules a config may make `lightning` import: a `class_path` (`--data`, `trainer.callbacks`, the
callback keys, ...) is resolved by importing its module, and an import runs that module's top-level
code before any type check can refuse the class. So a config from someone else that names, say, a module
installed for another purpose would run it. Only these packages may be named:

- normlab's own (`models`, `datamodules`, `callbacks`) and the top-level packages and modules of the
  repository and of the current directory (a project's own callbacks or data modules live there);
- Lightning (`pytorch_lightning`, `lightning`, `lightning_fabric`) and torch (`torch`, `torchmetrics`,
  `torchvision`), whose classes a LightningCLI config names (loggers, strategies, plugins, ...).
Anything else is refused before it is imported, through jsonargparse's public import-path policy
(`set_parsing_settings`: deny `*`, allow these; its own denylist of `os`, `subprocess`, `builtins.open`,
... still applies under them).
"""
from __future__ import annotations

from pathlib import Path

from jsonargparse import set_parsing_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
LIBRARY_PACKAGES = ("models", "datamodules", "callbacks", "pytorch_lightning", "lightning", "lightning_fabric", "torch",
                    "torchmetrics", "torchvision")


def local_packages(folder: Path) -> list[str]:
    """The top-level packages (folders holding Python files: regular or namespace packages, like `tests`)
    and modules (`*.py`) in `folder`."""
    names = [p.name for p in folder.iterdir() if p.is_dir() and next(p.glob("*.py"), None) is not None]
    names += [p.stem for p in folder.glob("*.py")]
    return [name for name in names if name.isidentifier()]


def allowed_packages() -> list[str]:
    return sorted({*LIBRARY_PACKAGES, *local_packages(REPO_ROOT), *local_packages(Path.cwd())} - {"jsonargparse"})


def restrict_class_paths() -> None:
    """Refuse, before importing it, any module a parsed value names outside `allowed_packages()`."""
    set_parsing_settings(import_path_denylist=["*"], import_path_allowlist=allowed_packages())
