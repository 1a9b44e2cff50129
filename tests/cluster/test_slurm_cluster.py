"""The SLURM launcher against a real one-node SLURM cluster (`tools/slurm_cluster.sh`; `make test-cluster`
brings it up and runs these). Each test submits `lightning sweep --launcher slurm` of tiny runs on
generated IDX data, waits for SLURM to finish the job array, and reads what the runs wrote.

- a sweep file without a `slurm:` section runs every task (no --gres on a cluster without GPUs);
  the same command afterwards submits nothing;
- a task signalled with USR1 (as SLURM does before a time limit) saves `hpc_ckpt_1.ckpt`, is requeued,
  and resumes into the same run directory to the uninterrupted step count;
- a second submission while the first job array is still queued is refused, naming the job to wait for;
- a run with trainer.devices 2 on the CPU is a 2-task DDP job (gloo) with world_size 2; when another
  process holds its run, rank 0's refusal ends both ranks at once;
- every shipped sweep's script is accepted by this CPU cluster (`sbatch --test-only`).
"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_app.sweep.export import query_cluster, slurm_script
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import ROOT
from tests.lightning_app.sweep.test_sweep_end_to_end import summary, tiny_sweep

pytestmark = pytest.mark.cluster
STEPS_PER_EPOCH = (256 - 64) // 32  # tiny_sweep: 256 generated training images, 64 held out, batch 32


@pytest.fixture(scope="module", autouse=True)
def cluster_is_up():
    states = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True)
    if not {"idle", "mixed", "allocated"} & set(states.stdout.split()):
        pytest.fail("no SLURM node is up (sinfo: "
                    f"{(states.stdout + states.stderr).strip() or 'nothing'}); as root run tools/slurm_cluster.sh, "
                    "or make test-cluster, which runs it first")


def sweep_command(sweep_file: Path, *extra: str) -> subprocess.CompletedProcess:
    """`lightning sweep --launcher slurm [-- extra]`, as a user types it in the repository root."""
    return subprocess.run([sys.executable, "-m", "lightning_app", "sweep", "--config", str(sweep_file),
                           "--launcher", "slurm", *(["--", *extra] if extra else [])],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def submit(sweep_file: Path, *extra: str) -> tuple[str, Path]:
    """Submits the sweep; returns the job id and the job-array script."""
    result = sweep_command(sweep_file, *extra)
    job = re.search(r"Submitted batch job (\d+)", result.stdout)
    assert result.returncode == 0 and job, result.stdout[-3000:] + result.stderr[-3000:]
    (script,) = sweep_file.parent.glob("runs/*/_sweep/slurm/sweep.sbatch")
    return job.group(1), script


def wait_for(job: str, timeout: float, until=None) -> None:
    """Until the job array has left the queue (or `until()` holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until is not None and until():
            return
        queued = subprocess.run(["squeue", "--noheader", f"--jobs={job}", "--format=%i %T"],
                                capture_output=True, text=True).stdout.strip()
        if until is None and not queued:
            return
        time.sleep(1)
    subprocess.run(["scancel", job])
    pytest.fail(f"job {job} not done after {timeout:.0f} s")


def task_logs(script: Path) -> str:
    return "".join(f"--- {log.name}\n{log.read_text()}" for log in sorted(script.parent.glob("*.log")))


def sbatch_directives(script: Path) -> set[str]:
    return {line.split(" ", 1)[1] for line in script.read_text().splitlines() if line.startswith("#SBATCH")}


def test_a_sweep_without_slurm_settings_runs_every_task_then_submits_nothing(fake_mnist_dir, tmp_path):
    sweep_file = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [bn, gn]\n")
    job, script = submit(sweep_file)
    cpus = query_cluster().cpus
    directives = sbatch_directives(script)
    assert not any(d.startswith("--gres") for d in directives)  # the cluster has no GPUs
    assert {"--array=0-1", "--ntasks-per-node=1", f"--cpus-per-task={cpus}"} <= directives  # the node's CPUs
    wait_for(job, timeout=600)
    runs = plan_sweep(load_sweep(sweep_file))
    for run in runs:
        assert (run.run_dir / "summary.json").is_file(), task_logs(script)
        assert summary(run.run_dir)["status"] == "completed" and summary(run.run_dir)["epochs"] == 1
    written = script.stat().st_mtime_ns
    again = sweep_command(sweep_file)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(2 finished, 0 to resume, 0 to start)" in again.stdout
    assert "every run is finished; nothing to submit" in again.stdout and "Submitted" not in again.stdout
    assert script.stat().st_mtime_ns == written  # no new job-array script either


def test_a_signalled_task_is_requeued_and_resumes_into_its_run_directory(fake_mnist_dir, tmp_path):
    epochs = 30
    sweep_file = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [gn]\nslurm: {cpus_per_task: 1}\n",
                            max_epochs=epochs)
    (run,) = plan_sweep(load_sweep(sweep_file))
    job, script = submit(sweep_file)
    last = run.run_dir / "checkpoints" / "last.ckpt"
    wait_for(job, timeout=300, until=last.is_file)  # training, past its first epoch
    signalled = subprocess.run(["scancel", "--signal=USR1", f"{job}_0"], capture_output=True, text=True)
    assert signalled.returncode == 0, signalled.stderr
    wait_for(job, timeout=600)
    logs = task_logs(script)
    assert (run.run_dir / "hpc_ckpt_1.ckpt").is_file(), logs  # Lightning's SLURM plugin saved on USR1
    # the newest checkpoint: the requeue's, or a last.ckpt of an epoch that ended before the SIGTERM that
    # follows the requeue was handled (epochs here are 6 steps)
    resumed = re.search(f"resuming the interrupted run in {re.escape(str(run.run_dir))} from (\\S+)", logs)
    assert resumed and resumed.group(1) in (f"{run.run_dir}/hpc_ckpt_1.ckpt",
                                            f"{run.run_dir}/checkpoints/last.ckpt"), logs
    # the final test scores the trained weights, not the requeue checkpoint Lightning would load under SLURM
    assert "Loaded model weights from the checkpoint" not in logs.split("`Trainer.fit` stopped")[-1], logs
    finished = summary(run.run_dir)
    assert finished["status"] == "completed" and finished["epochs"] == epochs, logs
    assert finished["steps"] == epochs * STEPS_PER_EPOCH  # the requeued task continued, it did not restart
    assert [p.name for p in run.run_dir.parent.iterdir() if p.name != "_sweep"] == [run.run_dir.name]


def test_a_second_submission_while_the_first_is_queued_is_refused(fake_mnist_dir, tmp_path):
    # the runs root reached through a symlink, as a home directory often is
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    # one task at a time: the second is still pending (no lock taken yet) when the second command plans
    sweep_file = tiny_sweep(tmp_path / "link", fake_mnist_dir, "  model.norm: [gn, bn]\nslurm: {max_parallel: 1}\n",
                            max_epochs=10_000)
    job, script = submit(sweep_file)
    written = script.read_bytes()
    try:
        again = sweep_command(sweep_file)
        assert again.returncode == 2, again.stdout[-3000:] + again.stderr[-3000:]
        assert again.stderr.strip().splitlines()[-1] == (
            f"normlab: error: job array {job} of this sweep ({script}) is still queued or running; submitting again "
            f"would start its runs a second time. Wait for it to end (squeue), or cancel it first: scancel {job}")
        assert script.read_bytes() == written and "Submitted" not in again.stdout
    finally:
        subprocess.run(["scancel", job])
        wait_for(job, timeout=120)
    resubmitted, _ = submit(sweep_file)  # once the first has left the queue, the same command submits again
    subprocess.run(["scancel", resubmitted])
    wait_for(resubmitted, timeout=120)


def test_two_devices_on_the_cpu_run_as_a_two_task_ddp_job(fake_mnist_dir, tmp_path):
    sweep_file = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [gn]\n")
    ddp = ("--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    (run,) = plan_sweep(load_sweep(sweep_file), list(ddp))
    job, script = submit(sweep_file, *ddp)
    assert {"--ntasks-per-node=2", f"--cpus-per-task={max(query_cluster().cpus // 2, 1)}"} <= sbatch_directives(script)
    wait_for(job, timeout=600)
    assert (run.run_dir / "summary.json").is_file(), task_logs(script)
    finished = summary(run.run_dir)
    assert finished["status"] == "completed" and finished["world_size"] == 2, task_logs(script)
    # the global batch of 32 is split 16 per rank: the same steps per epoch as on one device
    assert finished["per_device_batch_size"] == 16 and finished["steps"] == STEPS_PER_EPOCH


def test_a_ddp_task_whose_run_is_taken_ends_every_rank_at_once(fake_mnist_dir, tmp_path, monkeypatch):
    """Rank 0 refuses a run another process trains (exit 2, before the process group forms): srun's
    --kill-on-bad-exit ends rank 1 with it, which would otherwise wait for rank 0 until the process-group
    timeout (30 min of the allocation). The script is planned while the run is free, then the run taken."""
    monkeypatch.chdir(ROOT)
    sweep_file = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [gn]\n")
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    spec = load_sweep(sweep_file)
    (run,) = plan_sweep(spec, ddp)
    script = run.run_dir.parent / "_sweep" / "slurm" / "sweep.sbatch"
    script.parent.mkdir(parents=True)
    script.write_text(slurm_script(spec, [run], script.parent, query_cluster()))
    holder = subprocess.Popen([sys.executable, "-c", "import signal, sys; from pathlib import Path; "
                               "from lightning_app.run.lock import RunLock; RunLock(Path(sys.argv[1])).acquire(); "
                               "print('locked', flush=True); signal.pause()", str(run.run_dir)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        submitted = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.strip().split(";")[0]
        wait_for(job, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    logs = task_logs(script)
    assert f"{run.run_dir} is in use by another training (pid {holder.pid} on host " in logs, logs


@pytest.mark.parametrize("sweep_file", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_is_accepted_by_the_cpu_cluster(sweep_file, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = load_sweep(sweep_file)
    script = tmp_path / "sweep.sbatch"
    script.write_text(slurm_script(spec, plan_sweep(spec), tmp_path, query_cluster()))
    result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    assert result.returncode == 0 and "to start at" in result.stderr, result.stderr
