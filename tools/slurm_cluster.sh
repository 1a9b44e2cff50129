#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine, for the cluster test tier (make test-cluster).
# Idempotent: installs Debian's slurm-wlm and munge when missing, (re)writes /etc/slurm/slurm.conf only when
# its content changes, starts munged/slurmctld/slurmd when they are not running, and waits (bounded) until
# sinfo shows the node idle. Needs root on Debian; says why and exits 1 otherwise.
set -euo pipefail

WAIT_SECONDS=${SLURM_CLUSTER_WAIT_SECONDS:-180}
say() { echo "slurm_cluster: $*"; }
fail() { echo "slurm_cluster: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts daemons)"
command -v apt-get >/dev/null || fail "needs Debian's apt-get to install slurm-wlm and munge"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge with apt (about a minute)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

node=$(hostname)
cpus=$(nproc)
# slurmd drains a node whose configured memory exceeds what it measures; leave a margin below MemTotal.
memory_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)

conf=$(cat <<CONF
# Written by tools/slurm_cluster.sh: a one-node test cluster.
ClusterName=normlab
SlurmctldHost=$node
AuthType=auth/munge
SlurmUser=root
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# Test jobs last seconds. A requeued job waits for its job credential to expire before it starts again
# (AuthInfo cred_expire, 120 s by default): 10 s keeps the requeue test short. Look at the queue often.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2
KillWait=5
NodeName=$node CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
)

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf_changed=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf
    conf_changed=1
fi

running() { pgrep -x "$1" >/dev/null; }

if ! running munged; then
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    [ -f /etc/munge/munge.key ] || fail "/etc/munge/munge.key is missing (reinstall munge)"
    say "starting munged"
    runuser -u munge -- munged --force 2>/dev/null || munged --force
fi
if [ "$conf_changed" = 1 ] && { running slurmctld || running slurmd; }; then
    say "slurm.conf changed: restarting slurmctld and slurmd"
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 30); do { running slurmctld || running slurmd; } || break; sleep 1; done
fi
if ! running slurmctld; then
    say "starting slurmctld"
    slurmctld
fi
if ! running slurmd; then
    say "starting slurmd"
    slurmd
fi

deadline=$((SECONDS + WAIT_SECONDS))
while :; do
    state=$(sinfo --noheader --nodes="$node" --format=%T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated) say "node $node is $state ($cpus CPUs, ${memory_mb} MB)"; exit 0 ;;
        drain*|down*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || fail "node $node not idle after ${WAIT_SECONDS}s (state: '${state:-none}'); see /var/log/slurm/"
    sleep 2
done
