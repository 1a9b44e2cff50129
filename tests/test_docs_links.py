"""The README and the results pages link only to files that exist in the repository (a figure not
committed, a page renamed, a config moved), and every config a results page tells a reader to run
exists."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CONFIG = re.compile(r"configs/[\w/.-]+\.yaml")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_named_config_exists(page):
    text = page.read_text()
    links = [target for target in LINK.findall(text) if "://" not in target]
    missing = [t for t in links if not (page.parent / t).exists()]
    configs = [c for c in CONFIG.findall(text) if Path(c).stem != "X"]  # `configs/sweeps/X.yaml`: a placeholder
    missing += [c for c in configs if not (ROOT / c).is_file()]
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"
