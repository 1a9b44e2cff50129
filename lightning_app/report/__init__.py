"""`lightning report`: tables and figures from a folder of finished run directories, read offline.

One module per step, in the order the report takes them:
- `runs.py`: a run directory read back (`config.yaml`, `summary.json`, `metrics.csv`), damaged files
  named and skipped;
- `groups.py`: which runs are compared (the same science counts once; groups differ only along axes);
- `tables.py`: accuracy and final σ(λ) tables in the GN paper's layout;
- `figures.py`, `batch_figures.py`: curves over training time, landscape bands, LR envelopes; accuracy
  and σ(λ) against batch size;
- `activation_figures.py`: the course report's histograms over time, channel means and gradient norms,
  for runs with activation statistics;
- `command.py`: the command line and `report.md`.
"""
