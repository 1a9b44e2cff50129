"""The run directory's contract, owned here and nowhere else.

`lightning fit` writes one run into `<root>/<experiment>/<run_name>/`; `validate`, `test` and `predict`
write beside it into `<run>/eval/...`; `lightning sweep` plans from it and `lightning report` reads it.
Each concern has one module:

- `identity.py`: the science config of a run, its derived name (a hash of that science), the first
  difference between two runs' science;
- `paths.py`: names (each a single path component), the run's path, which checkpoint a relaunch
  resumes from, which run a checkpoint belongs to, what `--overwrite` may delete, the checks before
  anything is written;
- `status.py`: the values of `summary.json`'s `status`, which are finished, which run was killed, and
  which completed run still lacks its final test;
- `lock.py`: one training process per run directory (an OS lock, released by the kernel on any death);
- `evaluation.py`: where and how evaluation results are written, apart from the fit's record;
- `interrupt.py`: SIGTERM/SIGINT end a run as `interrupted`, with a non-zero exit and one line;
- `failure.py`: an OS error (a full disk, ...) ends a run with one line saying what its summary holds;
- `launch.py`: what `fit` does with these before training: the checks, the lock, resume or refuse.

File modes (run files are as readable as any file the user creates) live in `callbacks/run_files.py`,
the one writer of run files, since callbacks never import `lightning_app`.
"""
