"""The run names the CLI's parser gave a sweep's runs, kept between `lightning sweep` calls.

The sweep planner names each run the way `lightning fit` will: through NormlabCLI's own parser
(cli_planner.py), which needs torch and Lightning imported and the model's, data's and Trainer's
signatures read (seconds on a small machine) for a `--dry-run` that prints a table. The parser's
answer depends only on the run's arguments, the files they name, the working directory, and the
code and library versions, so it is kept here under a key made of all of them, and a later plan of
the same run reads it instead of parsing: the names are the parser's, so they are the same. A
sweep run's directory never depends on the disk (its arguments are `fit`'s, without `ckpt_path`);
what does (status, lock) is read again on every plan.

One JSON file per code version in `$NORMLAB_CACHE_DIR` (default `$XDG_CACHE_HOME/normlab`, else
`~/.cache/normlab`); a new code version's file replaces the older ones. Written atomically; a file
that cannot be read or written is ignored (the plan then parses, as without a cache).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from callbacks.run_files import atomic_write_text

# normlab's packages (their source decides how a config parses and what a run is called) and the
# libraries that parse a config (jsonargparse, and the signatures it reads from Lightning and torch)
PACKAGES = ("lightning_app", "models", "datamodules", "callbacks")
LIBRARIES = ("jsonargparse", "pytorch-lightning", "lightning-utilities", "torch", "torchmetrics", "PyYAML")
CACHE_PREFIX = "sweep-run-names-"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")  # what jsonargparse reads as a config (YAML reads JSON too)


@dataclass(frozen=True)
class NamedRun:
    """What the planner needs of a parsed run: its directory, what its launcher must provide, and whether
    it tests after fit (a completed run without its test is then resumed)."""

    run_dir: Path
    accelerator: str
    devices: Any
    test_after_fit: bool


def cache_dir() -> Path:
    if os.environ.get("NORMLAB_CACHE_DIR"):
        return Path(os.environ["NORMLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "normlab"


def code_version() -> str:
    """A digest of normlab's source files, the parsing libraries' versions and Python's."""
    digest = hashlib.sha1(sys.version.encode())
    for package in PACKAGES:
        for location in importlib.util.find_spec(package).submodule_search_locations:
            for path in sorted(Path(location).rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(location)}\0".encode() + path.read_bytes())
    for library in LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = None
        digest.update(f"{library}={version}\0".encode())
    return digest.hexdigest()


class RunNameCache:
    def __init__(self, path: Path, entries: dict[str, dict]):
        self.path, self.entries, self._changed = path, entries, False
        self._configs: dict[str, tuple[str | None, list[str]]] = {}

    @classmethod
    def load(cls) -> "RunNameCache":
        path = cache_dir() / f"{CACHE_PREFIX}{code_version()}.json"
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def get(self, args: list[str]) -> NamedRun | None:
        entry = self.entries.get(self._key(args))
        if not isinstance(entry, dict) or set(entry) != set(NamedRun.__dataclass_fields__):
            return None
        return NamedRun(Path(entry["run_dir"]), entry["accelerator"], entry["devices"], entry["test_after_fit"])

    def put(self, args: list[str], named: NamedRun) -> None:
        self.entries[self._key(args)] = {"run_dir": str(named.run_dir), "accelerator": named.accelerator,
                                         "devices": named.devices, "test_after_fit": named.test_after_fit}
        self._changed = True

    def save(self) -> None:
        if not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.entries))
            for stale in self.path.parent.glob(f"{CACHE_PREFIX}*.json"):  # other code versions
                if stale != self.path:
                    stale.unlink(missing_ok=True)
        except OSError:
            pass  # a cache only saves time: without it the next plan parses again

    def _key(self, args: list[str]) -> str:
        """The arguments, the working directory, and the content of every config file they name (and of
        any config file a config names in turn); another file that exists, by its path only."""
        files = {}
        pending = [value.partition("=")[2] if value.startswith("--") else value for value in args]
        while pending:
            value = pending.pop()
            if value in files or not _is_file(value):
                continue
            digest, strings = self._read_config(value)
            files[value] = digest
            pending.extend(strings)
        material = {"args": list(args), "cwd": os.getcwd(), "files": files}
        return hashlib.sha1(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def _read_config(self, path: str) -> tuple[str | None, list[str]]:
        """(digest of the content, its string values) of a config file, once per plan; (None, []) otherwise."""
        if path not in self._configs:
            is_config = Path(path).suffix in CONFIG_SUFFIXES
            content = Path(path).read_bytes() if is_config else None
            self._configs[path] = (hashlib.sha1(content).hexdigest(), _strings_in_yaml(content)) if is_config \
                else (None, [])
        return self._configs[path]


def _is_file(value: str) -> bool:
    return bool(value) and os.path.isfile(value)  # False too for a value no file system accepts as a path


def _strings_in_yaml(text: bytes) -> list[str]:
    """Every string value of a YAML document (a config may name another file); none if it is no YAML."""
    try:
        content = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return []
    strings, stack = [], [content]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return strings
