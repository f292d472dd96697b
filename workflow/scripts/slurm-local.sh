#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for trying the SLURM profile
# (workflow/profiles/slurm) without a cluster:
#
#   workflow/scripts/slurm-local.sh start    # install (apt), configure, start; wait for the node
#   export SLURM_CONF="$PWD/.slurm-local/etc/slurm.conf"   # what `start` prints
#   sinfo; sbatch --wrap hostname; squeue
#   workflow/scripts/slurm-local.sh status
#   workflow/scripts/slurm-local.sh stop     # shut down, remove the folder `start` made
#
# Needs root and Debian's packages slurm-wlm (slurmctld, slurmd, client) and
# munge; `start` installs them with apt-get when they are missing (they stay
# installed). Everything else lives in one folder, $SLURM_LOCAL_DIR (default
# .slurm-local/ at the repository root, git-ignored): the configuration, a
# munge key and munged's socket, state, spool, logs, and SLURM's job-completion
# log (jobcomp.log, `JobCompType=jobcomp/filetxt`), its record of every job
# that ran. The one thing outside it is a symbolic link /etc/slurm/slurm.conf to
# its configuration, made only where no slurm.conf exists and removed by `stop`:
# Snakemake's job steps run `srun` without $SLURM_CONF (the slurm-jobstep
# plugin drops every SLURM_* variable but the job's identity), so SLURM's
# default location must hold the configuration. No address but 127.0.0.1 is
# used: the daemons find each other there, the node is this host.
# No cgroups (containers often lack them): ProctrackType=proctrack/linuxproc,
# TaskPlugin=task/none. The node has this machine's CPUs and memory
# (`slurmd -C`) and no GPUs, so a job asking for --gres=gpu:1 is refused
# (workflow/profiles/slurm-local drops it).
#
# Exit status of `start`: 0 running; 3 SLURM cannot be had here (not root, no
# packages and no apt-get, install failed); 1 any other failure (see the logs).
# Every command is idempotent: `start` on a running cluster and `stop` on a
# stopped one do nothing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SLURM_LOCAL_DIR:-$REPO/.slurm-local}"
# the ports of a stock SLURM; set them when another cluster uses these
CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-6818}"
CONF="$DIR/etc/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

MARKER=.made-by-slurm-local  # `stop` deletes only a folder that holds it

die() { echo "slurm-local: $*" >&2; exit 1; }
unavailable() { echo "slurm-local: SLURM unavailable: $*" >&2; exit 3; }
say() { echo "slurm-local: $*" >&2; }

pid_alive() {  # pid_alive FILE: the process named in a pid file is running
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {  # idle, mixed, allocated, down, ... or nothing when slurmctld does not answer
    sinfo --noheader --Node --format=%T 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-' || true
}

ours() { [[ -f "$DIR/$MARKER" ]]; }

link_ours() { [[ -L "$SYSTEM_CONF" && "$(readlink "$SYSTEM_CONF")" == "$CONF" ]]; }

running() {
    pid_alive "$DIR/run/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" \
        && pid_alive "$DIR/run/slurmd.pid"
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || unavailable "missing ${missing[*]} and no apt-get to install them"
    say "installing slurm-wlm and munge (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            slurm-wlm munge >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1; then
        # the package lists may be missing or stale (a fresh container)
        apt-get update -q >>"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            slurm-wlm munge >>"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 \
            || unavailable "apt-get install slurm-wlm munge failed (${TMPDIR:-/tmp}/slurm-local-apt.log)"
    fi
}

write_config() {
    local host node cpus sockets cores threads mem
    host="$(hostname -s)"
    # this machine's real layout, as slurmd itself sees it
    node="$(slurmd -C | head -n 1)"
    field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$node"; }
    cpus="$(field CPUs)"; sockets="$(field SocketsPerBoard)"
    cores="$(field CoresPerSocket)"; threads="$(field ThreadsPerCore)"
    mem="$(field RealMemory)"
    [[ -n "$cpus" && -n "$mem" ]] || die "cannot read this machine's CPUs and memory from 'slurmd -C': $node"
    # The daemons bind to the address this host's name resolves to, instead of
    # every interface, when that is a loopback address (it is with a stock
    # /etc/hosts); otherwise they listen on all interfaces, as SLURM does by default.
    local bind="# this host's name does not resolve to 127.x: listening on all interfaces"
    if [[ "$(getent ahostsv4 "$host" | awk 'NR == 1 {print $1}')" == 127.* ]]; then
        bind="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
    fi
    cat >"$CONF" <<EOF
# written by workflow/scripts/slurm-local.sh; removed by its 'stop'
ClusterName=mfaxlocal
# slurmctld only runs where SlurmctldHost names this host; 127.0.0.1 is how it is reached
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# SLURM's own record of every finished job (id, name, state, exit code, times)
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# finished jobs stay visible to squeue for 5 minutes (Snakemake polls their state)
MinJobAge=300
ReturnToService=2
$bind
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [[ "$(id -u)" == 0 ]] || unavailable "needs root (it starts slurmctld and slurmd as root)"
    if running; then
        say "already running ($DIR)"
    else
        install_packages
        # a dangling link: what a cluster that was never stopped left behind
        if [[ -L "$SYSTEM_CONF" && ! -e "$SYSTEM_CONF" ]]; then rm -f "$SYSTEM_CONF"; fi
        if [[ -e "$SYSTEM_CONF" || -L "$SYSTEM_CONF" ]] && ! link_ours; then
            unavailable "$SYSTEM_CONF exists (another SLURM configuration): not replacing it"
        fi
        # leftovers of a crashed start: stop what is left, begin afresh
        if [[ -d "$DIR" ]]; then
            ours || die "$DIR exists and was not made by this script; set SLURM_LOCAL_DIR"
            stop_daemons
            rm -rf "$DIR"
        fi
        mkdir -p "$DIR"/{etc,munge,state,spool,run,log}
        echo "made by workflow/scripts/slurm-local.sh" >"$DIR/$MARKER"
        # munged refuses keys and sockets that others can read or write
        chmod 700 "$DIR" "$DIR/munge"
        write_config
        mkdir -p "$(dirname "$SYSTEM_CONF")"
        ln -sfn "$CONF" "$SYSTEM_CONF"
        mungekey --create --keyfile="$DIR/munge/munge.key" --force >/dev/null 2>&1 \
            || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
        munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
            --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
            --seed-file="$DIR/munge/munged.seed" \
            || die "munged did not start ($DIR/log/munged.log)"
        # -i: ignore state from an earlier cluster; both daemonize and write their pid files
        slurmctld -i -f "$CONF" || die "slurmctld did not start ($DIR/log/slurmctld.log)"
        slurmd -f "$CONF" || die "slurmd did not start ($DIR/log/slurmd.log)"
    fi
    local state=""
    for _ in $(seq 60); do
        state="$(node_state)"
        [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] && break
        sleep 1
    done
    [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] \
        || die "the node is '${state:-not answering}' after 60 s (see $DIR/log/)"
    say "running: node $(hostname -s) is $state"
    echo "export SLURM_CONF=$(printf %q "$CONF")"
}

stop_daemons() {
    local name
    for name in slurmd slurmctld munged; do
        if pid_alive "$DIR/run/$name.pid"; then
            kill "$(cat "$DIR/run/$name.pid")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 30); do
        pid_alive "$DIR/run/slurmd.pid" || pid_alive "$DIR/run/slurmctld.pid" \
            || pid_alive "$DIR/run/munged.pid" || return 0
        sleep 1
    done
    die "daemons still running after 30 s (pids in $DIR/run/)"
}

stop() {
    if [[ -d "$DIR" ]]; then
        ours || die "$DIR was not made by this script; not touching it"
        stop_daemons
        if link_ours; then rm -f "$SYSTEM_CONF"; fi
        rm -rf "$DIR"
        say "stopped; removed $DIR and $SYSTEM_CONF"
    else
        say "not running"
    fi
}

status() {
    if running; then
        say "running ($DIR): node $(node_state)"
        echo "export SLURM_CONF=$(printf %q "$CONF")"
        sinfo
        squeue
    else
        say "not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
