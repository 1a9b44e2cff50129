"""YAML a user wrote: a key given twice in one mapping is an error naming the key and both lines.

YAML 1.1 loaders (PyYAML, and jsonargparse through it) keep the last of two equal keys without a
word, so `model: {norm: bn, lr: 0.01}` followed by `model: {norm: gn}` trains gn at the default lr,
and a sweep file with two `grid:` keys plans the runs of the second only. Every YAML normlab reads from
a user goes through here: `--config` files and sweep files by name (`load_yaml`), and whatever
jsonargparse reads itself (a file given to a key, `--data data.yaml`, or a value on the command line) by
the loader `use_in_jsonargparse` installs through jsonargparse's public `set_loader`.
"""
from __future__ import annotations

from typing import Any

import yaml

PARSER_MODE = "yaml"  # LightningCLI's parser mode


def duplicate_key(text: str) -> tuple[str, int, int] | None:
    """The first key given twice in one mapping of `text` (dotted from the top, list items as `[i]`) with
    the lines of its two occurrences, or None. Only the node tree is built (`yaml.compose`): no tag is
    constructed, so this reads nothing but syntax."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    pending: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while pending:
        node, where = pending.pop(0)
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                dotted = f"{where}.{name}" if where else str(name)
                if name is not None and name != "<<":
                    if (key.tag, name) in seen:
                        return dotted, seen[(key.tag, name)], line
                    seen[(key.tag, name)] = line
                pending.append((value, dotted))
        elif isinstance(node, yaml.SequenceNode):
            pending += [(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
    return None


def refuse_duplicate_keys(text: str, source: str) -> None:
    """ValueError naming `source`, the key and both lines, when a mapping of `text` repeats a key."""
    found = duplicate_key(text)
    if found is not None:
        key, first, second = found
        raise ValueError(f"{source}: duplicate key '{key}' at lines {first} and {second}; YAML keeps only the "
                         "last of them, so delete or merge one")


def load_yaml(text: str, source: str) -> Any:
    """`yaml.safe_load(text)`, refusing a duplicate key; a ValueError of one line naming `source` (and the
    line and column of a syntax error) for text that is no YAML."""
    try:
        refuse_duplicate_keys(text, source)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise ValueError(f"{source}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: "
                         f"{error.problem}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None


class DuplicateKeyError(Exception):
    """A duplicate key found inside jsonargparse's loading. Not a ValueError nor a YAMLError: jsonargparse
    catches those while it tries a value against each type of a Union, and would report a type mismatch
    instead. The CLI turns it into its one line (`NormlabCLI.parse_arguments`)."""


def use_in_jsonargparse() -> None:
    """Make jsonargparse's YAML loader refuse duplicate keys, keeping its own loading otherwise (its
    resolvers, e.g. `1e-3` as a float). Idempotent."""
    from jsonargparse import get_loader, set_loader

    loader = get_loader(PARSER_MODE)
    if getattr(loader, "refuses_duplicate_keys", False):
        return

    def load(text: str, path: str = "") -> Any:
        if isinstance(text, str):
            try:
                refuse_duplicate_keys(text, str(path) if path else f"value {text!r}")
            except ValueError as error:
                raise DuplicateKeyError(str(error)) from None
        return loader(text)

    load.refuses_duplicate_keys = True  # type: ignore[attr-defined]
    set_loader(PARSER_MODE, load, exceptions=(yaml.YAMLError,))
