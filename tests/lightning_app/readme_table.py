"""Test helper: the README's bad-input table, parsed, so tests can hold the code to what it documents.

Each row's message column holds one or more backquoted messages; in them `…` stands for a folder and
`<...>` (not in quotes) for a part that varies (a JSON parser's wording, a line number).
"""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADER = "| bad input | example | message |"


def bad_input_table() -> dict[str, list[str]]:
    """{bad input (first column): [its messages]} in the README's order."""
    lines = README.read_text().splitlines()
    start = lines.index(TABLE_HEADER)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"README bad-input row does not have 3 cells: {line}"
        rows[cells[0]] = re.findall(r"`([^`]*)`", cells[2])
    return rows


def message_pattern(documented: str) -> str:
    """A regex for a documented message: `…` any folder, an unquoted `<...>` any text, the rest literal."""
    parts = re.split(r"(…|(?<!')<[^<>']+>)", documented)
    return "".join(".+" if part == "…" or (part.startswith("<") and part.endswith(">")) else re.escape(part)
                   for part in parts)


def assert_documented(row: str, message: str) -> None:
    """`message` is one of the messages of the README row `row`."""
    documented = bad_input_table()[row]
    assert any(re.fullmatch(message_pattern(d), message) for d in documented), \
        f"README row {row!r} documents {documented}, the code printed {message!r}"
