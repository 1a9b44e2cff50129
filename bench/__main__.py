"""`python -m bench [NAME ...]`: run the benchmarks, print one table, write bench/results/<name>.json.

A benchmark is a module `bench/<name>.py` with `run() -> list[dict]`; each row is a dict of plain
values (e.g. case, time_ms, ratio_to_bn, images_per_s, peak_rss_mb). The table prints each row's
keys as columns. `explosion_rule` (an hour of training on a CPU) runs only when named.
"""
from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import sys
import time
from pathlib import Path

from bench.timing import device_name

HELPERS = {"timing", "plain_loop", "__main__"}  # plain_loop: the process bench/fit_process.py times
ON_REQUEST = {"explosion_rule"}  # an hour of training on a CPU: run by name only
RESULTS = Path(__file__).parent / "results"


def discover() -> list[str]:
    return [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
            if m.name not in HELPERS and not m.name.startswith("_")]


def print_table(name: str, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[f"{row.get(c):.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
             for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n## {name}")
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths)))


def main(names: list[str]) -> None:
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # Trainer banners, once per repeat
    RESULTS.mkdir(exist_ok=True)
    available = discover()
    unknown = sorted(set(names) - set(available))
    if unknown:
        sys.exit(f"bench: unknown benchmark(s) {unknown}; available: {available}")
    for name in names or [n for n in available if n not in ON_REQUEST]:
        start = time.perf_counter()
        rows = importlib.import_module(f"bench.{name}").run()
        print_table(name, rows)
        record = {"benchmark": name, "device": device_name(), "date": time.strftime("%Y-%m-%d %H:%M"),
                  "seconds": round(time.perf_counter() - start, 1), "rows": rows}
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
