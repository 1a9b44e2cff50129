"""Run files: written as indented JSON, read back, a damaged one named with what is wrong and what to do;
the umask they are written under."""
import json
import os
import re

import pytest

from callbacks.run_files import current_umask, read_json, write_json


def test_a_truncated_file_is_one_error_naming_it_and_the_way_out(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"status": "completed", "epochs": [1, 2]})
    assert read_json(path) == {"status": "completed", "epochs": [1, 2]}
    path.write_text(path.read_text()[:20])
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads(path.read_text())
    expected = (f"{path} is corrupt or truncated ({error.value.msg} at line {error.value.lineno}); "
                "delete it or the run directory to start over")
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        read_json(path)


def test_a_run_file_is_indented_json_in_the_order_written(tmp_path):
    """summary.json and the other run files are for people too: two-space indents, the keys as written."""
    path = tmp_path / "summary.json"
    write_json(path, {"status": "completed", "best_val_acc": 0.5, "lambdas": {"b": 0.25, "a": None}})
    assert path.read_text() == ('{\n  "status": "completed",\n  "best_val_acc": 0.5,\n  "lambdas": {\n    "b": 0.25,\n'
                                '    "a": null\n  }\n}\n')


def test_the_umask_is_read_without_changing_it():
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still in force
    finally:
        os.umask(previous)
