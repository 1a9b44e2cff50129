"""Verify the W&B login in a process of its own: `python -P lightning_app/wandb_login_probe.py RESULT TIMEOUT`.

`wandb.Api()` finds the key (environment, ~/.netrc, settings) and has wandb-core verify it with the server.
Run inside the CLI's process, a failed check can keep that process alive without bound: wandb's exit
handler waits, with no time limit, for wandb-core to shut down, and wandb-core may still be retrying the
request or reporting its error over a network that drops packets instead of refusing them. So the CLI runs
this module under a deadline (`wandb_logger.check_login`), and this module writes its one-line JSON outcome
to RESULT and leaves with `os._exit`, skipping those exit handlers; wandb-core exits once it sees this
process gone."""
import json
import os
import sys
from pathlib import Path


def outcome(timeout: float) -> dict:
    try:
        import wandb

        wandb.Api(timeout=timeout)
    except Exception as error:  # noqa: BLE001: whatever stops the check is the answer
        missing = type(error).__name__ == "UsageError"  # wandb.errors.UsageError: no key anywhere
        detail = " ".join(str(error).split())[:200]
        return {"verified": False, "missing": missing, "error": f"{type(error).__name__}: {detail}"}
    return {"verified": True}


if __name__ == "__main__":
    result_path, timeout = sys.argv[1], float(sys.argv[2])
    Path(result_path).write_text(json.dumps(outcome(timeout)))
    os._exit(0)
