#!/usr/bin/env bash
# Install, configure and start a single-node SLURM (munged, slurmctld, slurmd) for the tests.
#
# Usage (as root, Debian/Ubuntu):  ci/slurm/setup.sh [--no-install]
#   1. installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get when missing;
#   2. copies ci/slurm/slurm.conf and gres.conf to /etc/slurm/ (the standard place: the SLURM
#      plugin's job steps drop SLURM_CONF) and creates the state folders;
#   3. starts the daemons that are not already running, each in its own session, and writes
#      "<name> <pid>" lines for exactly those to $AVVP_SLURM_STATE/pids (default /run/avvp-slurm);
#   4. waits until the node takes jobs (`sinfo`), or fails after $AVVP_SLURM_TIMEOUT seconds (60).
# ci/slurm/stop.sh stops the daemons listed in the PID file, and nothing else.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state=${AVVP_SLURM_STATE:-/run/avvp-slurm}
timeout=${AVVP_SLURM_TIMEOUT:-60}
pids="$state/pids"

log() { echo "ci/slurm/setup.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (installs packages, writes /etc/slurm, starts daemons)"
    exit 1
fi

install_packages() {
    local missing=0 tool
    for tool in sbatch squeue sinfo slurmctld slurmd munged; do
        command -v "$tool" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" = 0 ] && return 0
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

configure() {
    install -d -m 755 /etc/slurm
    install -m 644 "$here/slurm.conf" /etc/slurm/slurm.conf
    install -m 644 "$here/gres.conf" /etc/slurm/gres.conf
    install -d -o slurm -g slurm -m 755 /var/lib/slurm /var/lib/slurm/slurmctld \
        /var/lib/slurm/slurmd /var/log/slurm
    # gres.conf's placeholder GPU devices: links to /dev/null (a character device, which SLURM
    # needs to set CUDA_VISIBLE_DEVICES; a plain file gives a GPU without it).
    local i
    for i in 0 1 2 3; do
        ln -sfn /dev/null "/var/lib/slurm/fake-gpu$i"
    done
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge
    install -d -o munge -g munge -m 711 /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        install -d -o munge -g munge -m 700 /etc/munge
        mungekey --create --keyfile /etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -m 755 "$state"
}

# start NAME COMMAND...: run a daemon in the foreground of its own session, record its PID.
start() {
    local name=$1
    shift
    # setsid execs in place (the background child is no process-group leader): $! is the daemon.
    setsid "$@" >"$state/$name.out" 2>&1 </dev/null &
    echo "$name $!" >>"$pids"
    log "started $name (pid $!)"
}

# wait_for WHAT COMMAND...: retry COMMAND until it succeeds or the timeout passes.
wait_for() {
    local what=$1 waited=0
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$waited" -ge "$timeout" ]; then
            log "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# The node takes jobs: idle, or already running some (mix, alloc).
node_up() {
    case "$(sinfo --noheader --nodes=localhost --format=%t 2>/dev/null)" in
        idle | mix | alloc) return 0 ;;
        *) return 1 ;;
    esac
}

diagnose() {
    log "SLURM did not come up; last log lines:"
    sinfo --long --Node >&2 || true
    tail -n 20 "$state"/*.out /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    "$here/stop.sh" || true
}

[ "${1:-}" = --no-install ] || install_packages
configure

if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for munged sh -c 'munge -n </dev/null | unmunge' || { diagnose; exit 1; }
fi
if ! scontrol ping 2>/dev/null | grep -q UP; then
    # -c: start without the jobs of an earlier test run.
    start slurmctld slurmctld -D -c
    wait_for slurmctld sh -c 'scontrol ping | grep -q UP' || { diagnose; exit 1; }
fi
if ! node_up; then
    if ! pgrep -x slurmd >/dev/null; then
        start slurmd slurmd -D -N localhost
    fi
    wait_for "node localhost to take jobs" node_up || { diagnose; exit 1; }
fi
sinfo
log "SLURM is up; PIDs of the daemons started here: $pids"
