"""Bad command-line or YAML input → one line that names the value and what is allowed.

jsonargparse reports a parse error as usage text plus a multi-line message (Union subtypes, class
reprs, `NestedArg(...)`). The CLI builds its parsers with `exit_on_error=False`, catches the
`ArgumentError` and turns its message into one line here:

- a YAML syntax error names the file, line and column, a duplicate key the key and both lines
  (`check_yaml_files`, before parsing);
- an unknown key names the key and suggests the closest valid one (`difflib`);
- an unknown `class_path` lists the registered data modules, one outside the packages a config may
  import (`class_paths.py`) says so;
- a bad type names the key, the value given and the type expected.
Anything else is kept, on one line. The patterns that read jsonargparse's wording live in
callbacks/compat.py, whose test provokes each message from the installed jsonargparse.
"""
from __future__ import annotations

import difflib
import gzip
import importlib
import inspect
import os
import pickle
import sys
import zlib
from pathlib import Path

from jsonargparse import ArgumentError

from callbacks.compat import (CLASS_PATH_PROBLEM, CLASS_REPR, CONFIG_FILE_MISSING, ERROR_BULLET,
                              EXPECTED_TYPE, GIVEN_VALUE, IMPORT_DENIED, KEY_NOT_ACCEPTED, LITERAL_TYPE, NONE_ALTERNATIVE,
                              OPTION_NOT_ACCEPTED, PARSER_KEY, UNION_ERRORS, UNRECOGNIZED_ARGUMENTS,
                              parser_actions)
from lightning_app.class_paths import REPO_ROOT
from lightning_app.yaml_files import load_yaml, refuse_duplicate_keys

YAML_SUFFIXES = (".yaml", ".yml")
# What reading a damaged file raises before any loader can check it (gzip, zlib, pickle streams).
CORRUPT_FILE_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, pickle.UnpicklingError)


def corrupt_file_message(error: BaseException) -> str:
    """One line for a CORRUPT_FILE_ERRORS error, naming the file the failing reader had open: the
    innermost frame of the traceback with a local variable that is a path to an existing file."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    culprit = next((str(v) for frame in reversed(frames) for v in frame.f_locals.values()
                    if isinstance(v, (str, os.PathLike)) and len(str(v)) < 4096 and os.path.isfile(v)), None)
    where = culprit or "a data file"
    return f"{where} is truncated or corrupt ({type(error).__name__}: {one_line(error)}); replace it with a good copy"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_yaml_files(argv: list[str]) -> None:
    """Raise ValueError naming file, line and column for the first `--config` file that is not YAML, or
    naming the file, key and both lines for a YAML file given to any option that gives a key twice."""
    for i, arg in enumerate(argv):
        path = argv[i + 1] if arg in ("--config", "-c") and i + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--config=") else None)
        if path is None:  # a YAML file given to another key (`--data data.yaml`): its keys only
            value = arg.split("=", 1)[-1]
            if value.endswith(YAML_SUFFIXES) and Path(value).is_file():
                refuse_duplicate_keys(Path(value).read_text(), value)
            continue
        if not Path(path).is_file():
            continue  # inline YAML or a missing file: jsonargparse reports those itself
        load_yaml(Path(path).read_text(), path)


def valid_keys(parser) -> list[str]:
    """Every dotted key the (sub)command parser accepts, spelled as on the command line (`dry-run`)."""
    return [next((o[2:] for o in a.option_strings if o.startswith("--")), a.dest) for a in parser_actions(parser)
            if a.dest not in ("help", "config", "print_config") and not a.dest.endswith(".help")]


def class_options(class_path: str) -> list[str]:
    """The init arguments a class accepts (following **kwargs up the MRO, as jsonargparse does)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    options: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        options += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                    and p.name not in options]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return options


def unknown_key(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:  # a typo in the last part only: compare it with the last parts of its siblings
        prefix, _, leaf = key.rpartition(".")
        siblings = [c.rpartition(".")[2] for c in candidates if c.rpartition(".")[0] == prefix]
        close = [f"{prefix}.{m}" if prefix else m for m in difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.5)]
    hint = f"; did you mean '{close[0]}'?" if close else "; see --help for the accepted keys"
    return f"unknown config key '{key}'{hint}"


def _registered_data_modules() -> str:
    from datamodules import DATAMODULES

    return ", ".join(f"{cls.__module__.split('.')[0]}.{cls.__name__}" for cls in DATAMODULES.values())


def _type_name(text: str) -> str:
    text = text.strip()
    if literal := LITERAL_TYPE.fullmatch(text):
        return f"one of {literal.group(1)}"
    return CLASS_REPR.sub(r"\1", text).replace(type(None).__name__, "null")


def _explain_type(key: str, message: str) -> str | None:
    given = GIVEN_VALUE.search(message)
    expected = EXPECTED_TYPE.findall(message)
    if not (given and expected):
        return None
    types = " or ".join(dict.fromkeys(_type_name(t) for t in expected))
    return f"{key}: got {given.group(1).strip()!r}, expected {types}"


def _union_errors(block: str) -> list[str]:
    """The per-subtype errors in the bulleted block of a Union error (UNION_ERRORS' group 1), less the
    `None` alternative every optional key has."""
    errors = [one_line(e) for e in ERROR_BULLET.split("\n" + block) if e.strip()]
    return [e for e in errors if not NONE_ALTERNATIVE.fullmatch(e)]


def explain_parse_error(message: str, parser=None) -> str:
    """One line for a jsonargparse error message; `parser` (the subcommand's) supplies valid keys."""
    keys = valid_keys(parser) if parser is not None else []
    if m := UNRECOGNIZED_ARGUMENTS.search(message):
        if not m.group(1).startswith("-"):  # a word where no positional argument is left: not a key
            return f"unexpected argument '{m.group(1)}'; options are written --key value (see --help)"
        return unknown_key(m.group(1).lstrip("-").split("=", 1)[0], keys)
    if m := KEY_NOT_ACCEPTED.search(message):
        return unknown_key(m.group(1), keys)
    if m := CONFIG_FILE_MISSING.search(message):
        return f"config file {m.group(1)} does not exist"
    parser_key = m.group(1) if (m := PARSER_KEY.search(message)) else None
    if m := CLASS_PATH_PROBLEM.search(message):
        class_path, reason = m.groups()
        prefix = f"{parser_key}.init_args." if parser_key else ""
        if option := OPTION_NOT_ACCEPTED.match(reason):
            return unknown_key(prefix + option.group(1), [prefix + o for o in class_options(class_path)])
        if inner := PARSER_KEY.match(reason):
            return _explain_type(prefix + inner.group(1), inner.group(2)) or one_line(reason)
        if IMPORT_DENIED.match(reason):
            return (f"{parser_key}: class_path '{class_path}' is outside the packages a config may import "
                    f"(normlab's, Lightning's, torch's, and those in {REPO_ROOT} or the current directory); "
                    "refused before importing it")
        allowed = f"; allowed: {_registered_data_modules()}" if parser_key == "data" else ""
        return f"{parser_key}: cannot use class_path '{class_path}' ({one_line(reason)}){allowed}"
    if union := UNION_ERRORS.search(message):
        errors = _union_errors(union.group(1))
        only_types = all(EXPECTED_TYPE.match(e) for e in errors)
        if parser_key and only_types and (typed := _explain_type(parser_key, message)):
            return typed
        if errors:
            return (f"{parser_key}: " if parser_key else "") + "; ".join(errors)
    if parser_key and (typed := _explain_type(parser_key, message)):
        return typed
    return one_line(message)


def parse_command_line(parser, argv: list[str]):
    """`parser.parse_args(argv)` for a parser built with `exit_on_error=False`: a parse error is raised as
    a ValueError holding its one line (`lightning sweep` and `lightning report`)."""
    try:
        return parser.parse_args(argv)
    except ArgumentError as error:
        raise ValueError(explain_parse_error(str(error), parser)) from None


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input (evaluated when one arrives): Lightning's configuration error
    only when Lightning was imported, since only then can it have been raised (and importing it costs seconds)."""
    errors = (ValueError, FileNotFoundError, *CORRUPT_FILE_ERRORS)  # FileNotFoundError and a corrupt gzip
    # file are OSErrors, but no failure of the file system a run writes to
    if "pytorch_lightning" in sys.modules:
        from pytorch_lightning.utilities.exceptions import MisconfigurationException

        errors += (MisconfigurationException,)
    return errors
