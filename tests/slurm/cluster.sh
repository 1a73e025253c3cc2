#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the cohort SLURM test, entirely inside one
# folder: its own munge key and socket, slurm.conf, state, spool and logs, on free ports.
#   cluster.sh start DIR CTLD_PORT SLURMD_PORT   (prints nothing; waits until the node is idle)
#   cluster.sh stop DIR
# Clients then need SLURM_CONF=DIR/slurm.conf.
set -euo pipefail
action=$1
dir=$2
case $action in
start)
    ctld_port=$3
    slurmd_port=$4
    mkdir -p "$dir"/{munge,state,spool,log}
    chmod 700 "$dir/munge"
    host=$(hostname -s)
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    # --force: the test's folder lives under a world-writable /tmp.
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
        --log-file="$dir/log/munged.log"
    cat > "$dir/slurm.conf" <<CONF
ClusterName=brainsamtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -i -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF" -N "$host"
    for _ in $(seq 1 60); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        [ "$state" = idle ] && exit 0
        sleep 1
    done
    echo "cluster.sh: node $host not idle after 60 s (state: ${state:-none}); logs in $dir/log" >&2
    tail -20 "$dir"/log/*.log >&2 || true
    exit 1
    ;;
stop)
    export SLURM_CONF=$dir/slurm.conf
    scancel --full -u root >/dev/null 2>&1 || true
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 1
    ;;
*)
    echo "usage: cluster.sh start DIR CTLD_PORT SLURMD_PORT | stop DIR" >&2
    exit 2
    ;;
esac
