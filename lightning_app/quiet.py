"""Silence what Lightning and torch print on every run that the user cannot act on, so that the
warnings that matter (a bad config, an unreliable resume) are not lost among them:
- Lightning's advertisement for its LitLogger cloud service ("💡 Tip: ... litlogger");
- torch's deprecation of `isinstance(treespec, LeafSpec)`, raised inside Lightning's own code;
- "The `srun` command is available on your system but is not used": printed for every local run on
  a machine with SLURM installed (a login node, the test cluster), including `lightning sweep`'s
  local runs; `lightning sweep --launcher slurm` does start its runs with srun.
"""
from __future__ import annotations

import logging
import warnings

ADVERTISEMENT = "💡 Tip: For seamless cloud logging"
UNACTIONABLE_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                         r"The `srun` command is available on your system but is not used")
# rank_zero_info logs through whichever of these two lightning_utilities was last pointed at
RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENT)


def quiet_unactionable_output() -> None:
    for message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisement) for f in logger.filters):
            logger.addFilter(_DropAdvertisement())
