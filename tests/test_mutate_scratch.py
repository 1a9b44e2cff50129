"""`make mutate`'s scratch folder when a module is narrowed to other files than its last run's (tests/mutate.py)."""
from tests import mutate


def test_a_file_newly_named_for_mutation_loses_its_unmutated_copy_and_the_stats(tmp_path, monkeypatch):
    root, where = tmp_path / "repo", tmp_path / "scratch"
    for name in ("pkg/measured.py", "pkg/new.py", "pkg/notes.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x = 1\n")
        (where / "mutants" / name).parent.mkdir(parents=True, exist_ok=True)
        (where / "mutants" / name).write_text("x = 1\n")
    (where / "mutants" / "pkg/measured.py.meta").write_text("{}")  # mutated and measured before
    (where / "mutants" / "mutmut-stats.json").write_text("{}")
    monkeypatch.setattr(mutate, "ROOT", root)

    mutate.forget_unmutated_copies(where, ("pkg/measured.py",))
    assert (where / "mutants" / "pkg/measured.py").is_file() and (where / "mutants" / "mutmut-stats.json").is_file()

    mutate.forget_unmutated_copies(where, ("pkg/*",))
    assert not (where / "mutants" / "pkg/new.py").exists() and not (where / "mutants" / "mutmut-stats.json").exists()
    assert (where / "mutants" / "pkg/measured.py").is_file() and (where / "mutants" / "pkg/notes.txt").is_file()
