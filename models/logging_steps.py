"""Which training steps Lightning writes to its loggers.

`self.log(..., on_step=True)` costs more than a whole training step of a small model on a CPU
(Lightning's result collection moves, checks and caches every value), yet Lightning writes the
logged values only every `trainer.log_every_n_steps` steps (and on a stop, and every step of a
`fast_dev_run`). Per-step values are therefore logged on those steps only: what reaches the loggers,
and `metrics.csv`, is the same. A value logged on some steps must be logged on every step that is
written, or Lightning writes the stale one from the step it was last logged, so the decision is
Lightning's own (`_LoggerConnector.should_update_logs`, pytorch_lightning 2.6.6; listed in
callbacks/compat.py's private internals, which models/ cannot import) and is taken at the end of
the batch, after anything in the step (an explosion detected) may have stopped the run.
"""
from __future__ import annotations


def is_logging_step(trainer) -> bool:
    """True when Lightning writes this training batch's `on_step` values to the loggers."""
    return bool(trainer.fast_dev_run) or trainer._logger_connector.should_update_logs
