"""`make mutate`: mutation testing of the modules whose logic decides a number, each against its own tests.

    python -m tests.mutate [MODULE[=FILE,...] ...]     (default: every module below, in this order)
    python -m tests.mutate --table [MODULE ...]        (the rows of what earlier runs left, running nothing)

A mutant is a small change to one function (a `<` for a `<=`, a constant, a dropped call: mutmut 3,
pinned in the Makefile); it is killed when some test fails on it. Each module runs in its own scratch
copy of the tracked files, `build/mutate/<module>/`, with a `setup.cfg` naming the files mutmut may
change and the test files it may run (mutmut records which of those tests reach each function and runs
only them on its mutants). `optim=models/optim.py`-style arguments narrow a module to some of its
files. A finished module prints one row: mutants, killed, survived, equivalent and out of mutmut's reach
(the survivors listed, with why, in tests/MUTATION.md), the kill rate among the rest, and every
survivor that is not listed there. Only code run in the test process counts: mutmut neither records
nor re-runs tests that reach a function through a subprocess (`lightning ...` in a child, DDP ranks).
Results stay in build/mutate/<module>/mutants/ (`mutmut show NAME` there shows one); a second run of a
module retests only what changed.

The tier markers apply: slow and cluster tests never run here, nor the test files `LEFT_OUT` names.
OMP_NUM_THREADS=1 and two workers keep a run to a 2-core machine; a whole run takes hours (tests/MUTATION.md
has each module's time).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutate"
RECORD = ROOT / "tests" / "MUTATION.md"
PACKAGES = ("lightning_app", "models", "datamodules", "callbacks")

# module -> (files mutmut may change, test files it may run); globs relative to the repository root.
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "optim": (("models/optim.py",), ("tests/models/test_optim_*.py",)),
    "norms": (("models/norms/*",), ("tests/models/test_norms_*.py",)),
    "callbacks": (("callbacks/*",), ("tests/callbacks/test_*.py",)),
    "run": (("lightning_app/run/*",), ("tests/lightning_app/test_run_*.py",)),
    "sweep": (("lightning_app/sweep/*",), ("tests/lightning_app/sweep/test_*.py",)),
    "data": (("datamodules/base.py",), ("tests/datamodules/test_*.py",)),
    "report": (("lightning_app/report/*",), ("tests/lightning_app/report/test_*.py",)),
}
# Test files left out of a module's runs: they train in a child process, which costs 15-25 s for every mutant
# that survives the rest of the module's tests (hours over a module); what they check of the planner and the
# exports, in-process tests check too (test_sweep_local.py, test_sweep_launchers.py). A kill rate without
# them can only be lower.
LEFT_OUT: dict[str, tuple[str, ...]] = {
    "sweep": ("tests/lightning_app/sweep/test_sweep_end_to_end.py", "tests/lightning_app/sweep/test_wandb_agent.py"),
}
KILLED = {1, 3, 24, 36, 152, 255, -24}  # mutmut's exit codes for a failing test or a timeout
# Every test passed (0), or none of the module's tests reaches the function (5, 33): not killed either way.
SURVIVED = {0, 5, 33}


def scratch_copy(module: str, files: tuple[str, ...], tests: tuple[str, ...]) -> Path:
    """build/mutate/<module>/: the tracked files of this working tree (as they are now) and the config."""
    where = SCRATCH / module
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in tracked.decode().split("\0"):
        source, target = ROOT / name, where / name
        if name and source.is_file() and not (target.is_file() and target.read_bytes() == source.read_bytes()):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    found = sorted(str(p.relative_to(ROOT)) for pattern in tests for p in ROOT.glob(pattern))
    selection = [name for name in found if name not in LEFT_OUT.get(module, ())]
    also_copy = sorted({name.split("/")[0] for name in tracked.decode().split("\0") if name}
                       - set(PACKAGES) - {"tests", "setup.cfg", "pyproject.toml"})
    lines = ["[mutmut]", "source_paths=", *(f"    {p}/" for p in PACKAGES), "only_mutate=",
             *(f"    {f}" for f in files), "pytest_add_cli_args_test_selection=", *(f"    {t}" for t in selection),
             "pytest_add_cli_args=", "    -m", "    not slow and not cluster", "    -p", "    no:cacheprovider",
             "also_copy=", *(f"    {p}" for p in also_copy),
             # torch in the workers: fork them from a server that imported, never ran, the tests
             "process_isolation=forkserver", "use_git_change_detection=false",
             # a shared, busy machine runs a test many times slower than it did alone: a generous wall-clock
             # limit ((estimate + 30 s) x 20), so that only a mutant that hangs is a timeout
             "timeout_constant=30", "timeout_multiplier=20"]
    (where / "setup.cfg").write_text("\n".join(lines) + "\n")
    forget_unmutated_copies(where, files)
    return where


def forget_unmutated_copies(where: Path, files: tuple[str, ...]) -> None:
    """A file named for mutation that an earlier, narrower run of the module left unmutated in `mutants/`
    (no results beside it): mutmut would take that copy as up to date and make no mutants of it, and its
    recorded stats map no test to the file's functions (every mutant a "no tests" survivor). The copy goes,
    and with it the stats, which mutmut then collects afresh; the results of the other files stay. A file
    without a function (a package's `__init__.py`) has no mutants and no results: it is left alone."""
    mutants = where / "mutants"
    stale = [mutants / path.relative_to(ROOT) for pattern in files for path in ROOT.glob(pattern)
             if path.suffix == ".py" and "def " in path.read_text()]
    stale = [copy for copy in stale if copy.is_file() and not copy.with_name(copy.name + ".meta").is_file()]
    for copy in stale:
        copy.unlink()
    if stale:
        (mutants / "mutmut-stats.json").unlink(missing_ok=True)


def listed_mutants(section: str) -> set[str]:
    """The survivors a section of tests/MUTATION.md explains, one per line starting "- `<mutant name>`":
    "Equivalent mutants" (they cannot change what the module computes) or "Out of mutmut's reach" (code
    that runs while the module is imported, before mutmut activates a mutant, or that only an accelerator
    this machine lacks would show)."""
    text = RECORD.read_text() if RECORD.is_file() else ""
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return set(re.findall(r"^- `([\w.ǁ]+__mutmut_\d+)`", match.group(1), flags=re.M)) if match else set()


def results(where: Path) -> dict[str, int | None]:
    """Every mutant's exit code (None: not run), from mutmut's per-file records."""
    codes: dict[str, int | None] = {}
    for meta in (where / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def last_run(where: Path) -> str:
    """The day mutmut last recorded a result there."""
    metas = list((where / "mutants").rglob("*.py.meta"))
    return date.fromtimestamp(max(m.stat().st_mtime for m in metas)).isoformat() if metas else "-"


def run_module(module: str, files: tuple[str, ...], tests: tuple[str, ...]) -> str:
    where = scratch_copy(module, files, tests)
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    run = subprocess.run([str(mutmut), "run", "--max-children", os.environ.get("MUTATE_JOBS", "2")], cwd=where,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (where / "mutmut.log").write_text(run.stdout)
    if run.returncode != 0:
        raise SystemExit(f"mutate: mutmut failed on {module} (exit {run.returncode}); log: {where / 'mutmut.log'}\n"
                         + run.stdout[-3000:])
    return table_row(module)


def command_of(module: str) -> str:
    """The `make mutate` that made the results on disk: narrowed to some files if its setup.cfg says so."""
    config = (SCRATCH / module / "setup.cfg").read_text()
    files = re.search(r"^only_mutate=\n((?:    .+\n)+)", config, flags=re.M).group(1).split()
    narrowed = "" if tuple(files) == MODULES[module][0] else "=" + ",".join(files)
    return f"make mutate MODULES={module}{narrowed}"


def table_row(module: str) -> str:
    """The module's row and its unexplained survivors, from the results its last run left."""
    codes = results(SCRATCH / module)
    equivalent, unreachable = listed_mutants("Equivalent mutants"), listed_mutants("Out of mutmut's reach")
    killed = sorted(n for n, c in codes.items() if c in KILLED)
    survived = sorted(n for n, c in codes.items() if c in SURVIVED)
    other = sorted(f"{n} ({c})" for n, c in codes.items() if c is not None and c not in KILLED | SURVIVED)
    explained = [n for n in survived if n in equivalent]
    out_of_reach = [n for n in survived if n in unreachable]
    unexplained = [n for n in survived if n not in equivalent and n not in unreachable]
    judged = len(killed) + len(unexplained)
    rate = f"{100 * len(killed) / judged:.1f} %" if judged else "n/a"
    row = (f"| {module} | {len(codes)} | {len(killed)} | {len(survived)} | {len(explained)} | {len(out_of_reach)} | "
           f"{rate} | `{command_of(module)}` | {last_run(SCRATCH / module)} |")
    notes = [f"  survived, not explained in tests/MUTATION.md: {n}" for n in unexplained]
    notes += [f"  neither killed nor survived (mutmut exit code): {n}" for n in other]
    unrun = sum(c is None for c in codes.values())
    notes += [f"  not run yet: {unrun} mutants"] if unrun else []
    return "\n".join([row, *notes])


def main(argv: list[str]) -> None:
    table_only = argv[:1] == ["--table"]
    chosen = argv[1:] if table_only else argv
    chosen = chosen or list(MODULES)
    print("| module | mutants | killed | survived | equivalent | out of reach | kill rate (the rest) | command "
          "| date |")
    print("|---|---|---|---|---|---|---|---|---|")
    for item in chosen:
        module, _, narrowed = item.partition("=")
        if module not in MODULES:
            raise SystemExit(f"mutate: unknown module {module!r}; allowed: {', '.join(MODULES)}")
        files, tests = MODULES[module]
        if table_only:
            print(table_row(module) if (SCRATCH / module / "mutants").is_dir() else f"| {module} | not run |")
        else:
            print(run_module(module, tuple(narrowed.split(",")) if narrowed else files, tests), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
