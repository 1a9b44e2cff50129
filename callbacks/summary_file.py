"""`summary.json`: its name and the statuses a run records there (written by `RunSummary`).

Kept apart from `run_summary.py`, which builds on Lightning, so that the commands that only read run
directories (`lightning report`, `lightning sweep`) never import Lightning or torch for them.
"""
SUMMARY_FILE = "summary.json"
RUNNING, COMPLETED, EXPLODED, FAILED, INTERRUPTED = "running", "completed", "exploded", "failed", "interrupted"
