"""`make mutate`'s scratch folder when a module is narrowed to other files than its last run's (tests/mutate.py)."""
from tests import mutate


def test_a_file_newly_named_for_mutation_loses_its_unmutated_copy_and_the_stats(tmp_path, monkeypatch):
    root, where = tmp_path / "repo", tmp_path / "scratch"
    for name in ("pkg/measured.py", "pkg/new.py", "pkg/notes.txt", "pkg/__init__.py"):
        text = '"""a package"""\n' if name.endswith("__init__.py") else "def f():\n    return 1\n"
        for folder in (root, where / "mutants"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    (where / "mutants" / "pkg/measured.py.meta").write_text("{}")  # mutated and measured before
    (where / "mutants" / "mutmut-stats.json").write_text("{}")
    monkeypatch.setattr(mutate, "ROOT", root)

    mutate.forget_unmutated_copies(where, ("pkg/measured.py",))
    assert (where / "mutants" / "pkg/measured.py").is_file() and (where / "mutants" / "mutmut-stats.json").is_file()

    mutate.forget_unmutated_copies(where, ("pkg/*",))
    assert not (where / "mutants" / "pkg/new.py").exists() and not (where / "mutants" / "mutmut-stats.json").exists()
    assert (where / "mutants" / "pkg/measured.py").is_file() and (where / "mutants" / "pkg/notes.txt").is_file()
    (where / "mutants" / "mutmut-stats.json").write_text("{}")
    mutate.forget_unmutated_copies(where, ("pkg/*",))  # nothing stale is left: the stats stay
    assert (where / "mutants" / "pkg/__init__.py").is_file() and (where / "mutants" / "mutmut-stats.json").is_file()
