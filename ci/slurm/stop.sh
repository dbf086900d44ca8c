#!/usr/bin/env bash
# Stop the SLURM daemons that ci/slurm/setup.sh started, by the PIDs it recorded, newest first:
# SIGTERM, then SIGKILL for any still alive after $AVVP_SLURM_STOP_WAIT seconds (10).
# A PID whose process no longer runs the recorded program (exited, or reused) is skipped.
# Safe to run twice, or when nothing was started.
set -uo pipefail

state=${AVVP_SLURM_STATE:-/run/avvp-slurm}
wait_s=${AVVP_SLURM_STOP_WAIT:-10}
pids="$state/pids"

log() { echo "ci/slurm/stop.sh: $*" >&2; }

[ -f "$pids" ] || { log "nothing to stop ($pids absent)"; exit 0; }

# alive NAME PID: the process PID exists and runs the program NAME.
alive() { [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }

tac "$pids" | while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    if ! alive "$name" "$pid"; then
        log "$name (pid $pid) is not running"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq "$((wait_s * 5))"); do
        alive "$name" "$pid" || break
        sleep 0.2
    done
    if alive "$name" "$pid"; then
        log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    log "stopped $name (pid $pid)"
done
rm -f "$pids"
