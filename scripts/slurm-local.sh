#!/usr/bin/env bash
# scripts/slurm-local.sh — a real one-node Slurm cluster (slurmctld + slurmd +
# munged) on this machine, for testing the Slurm backend end to end.
#
#   scripts/slurm-local.sh start        install (apt) if needed, start, wait for the node
#   scripts/slurm-local.sh stop         cancel this cluster's jobs, stop what start started
#   scripts/slurm-local.sh stop --keep-jobs   stop the daemons only (running job steps
#                                       survive and are picked up again by the next start)
#   scripts/slurm-local.sh status       daemons, sinfo, squeue; exit 0 up, 3 down
#   scripts/slurm-local.sh env          prints `export SLURM_CONF=...`, for
#                                       eval "$(scripts/slurm-local.sh env)"
#
# Why it looks like this:
# - No systemd here (PID 1 is the VM's init), so the daemons are started by
#   hand; they daemonize and write pid files into the state dir, which is how
#   stop/status find them (and how stop leaves alone anything it didn't start).
# - Everything (slurm.conf, munge key/socket, spool, state, logs, pids) lives in
#   one state dir, $HHNAS_SLURM_STATE (default /tmp/hhnas-slurm); nothing is
#   written to /etc/slurm. Client commands (sbatch, squeue, scontrol, scancel)
#   therefore need SLURM_CONF pointing at our slurm.conf: see `env`.
# - Runs as root: slurmd must be root; slurmctld's SlurmUser is root too.
# - No cgroups: proctrack/linuxproc + task/none, no accounting daemon
#   (accounting_storage/none, jobcomp/none), so `sacct` does not work here;
#   squeue / scontrol show job do (finished jobs stay visible for MinJobAge).
# - Behaviour seen with Debian 12's Slurm 22.05: `scontrol requeue J` puts J
#   back PENDING with Reason=BeginTime and Restarts+1, eligible only ~120 s
#   later (`scontrol update JobId=J StartTime=now` skips that wait); the node
#   has no GRES, so `--gres=gpu:1` is rejected at submit time.
# - Daemons talk over 127.0.0.1 only (NodeAddr/SlurmctldHost addr), so no DNS
#   for `hostname -s` is needed.
#
# Env knobs: HHNAS_SLURM_STATE (state dir), HHNAS_SLURM_CTLD_PORT (6817),
# HHNAS_SLURM_SLURMD_PORT (6818), HHNAS_SLURM_START_TIMEOUT (60 s).

set -euo pipefail

STATE="${HHNAS_SLURM_STATE:-/tmp/hhnas-slurm}"
CONF="$STATE/etc/slurm.conf"
RUN="$STATE/run"
LOG="$STATE/log"
MUNGE_DIR="$STATE/munge"
MUNGE_SOCKET_OWN="$MUNGE_DIR/munge.socket"
MUNGE_SOCKET_SYSTEM="/run/munge/munge.socket.2"
CTLD_PORT="${HHNAS_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${HHNAS_SLURM_SLURMD_PORT:-6818}"
START_TIMEOUT="${HHNAS_SLURM_START_TIMEOUT:-60}"
NODE="$(hostname -s)"

# Client commands we run ourselves (sinfo, squeue, scancel) must use our conf.
export SLURM_CONF="$CONF"

log() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

# pid_alive NAME PIDFILE: true if PIDFILE names a live process called NAME.
# The name check guards against a stale pid file whose pid was reused.
pid_alive() {
    local name="$1" pidfile="$2" pid comm
    # The daemon deletes its own pid file on exit, so it may vanish under us.
    pid="$(tr -dc '0-9' 2>/dev/null <"$pidfile")" || return 1
    [[ -n "$pid" ]] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [[ "$comm" == "$name" ]]
}

pidof_file() { tr -dc '0-9' 2>/dev/null <"$1" || true; }

# stop_pid NAME PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
    local name="$1" pidfile="$2" pid i
    if ! pid_alive "$name" "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(pidof_file "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        pid_alive "$name" "$pidfile" || break
        sleep 0.1
    done
    if pid_alive "$name" "$pidfile"; then
        log "$name did not exit in 30 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# Serialize start/stop: two callers starting at once must not start two
# slurmctlds on the same state dir. The lock is on fd 9; every daemon is
# started with `9>&-` so it does not inherit (and hold) the lock forever.
take_lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 120 9 || die "could not lock $STATE/.lock within 120 s"
}

# ---------------------------------------------------------------- install

ensure_packages() {
    local missing=()
    local bin
    for bin in slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    for bin in munged munge unmunge; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    ((${#missing[@]} == 0)) && return 0
    log "missing ${missing[*]}: installing slurm-wlm and munge with apt-get"
    [[ "$(id -u)" == 0 ]] || die "need root to apt-get install slurm-wlm munge"
    # Debian's maintainer scripts try to start the packaged services; where a
    # policy-rc.d forbids that (containers/VMs like this one) nothing starts,
    # otherwise a system munged may start — which we then simply reuse.
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >"$LOG/apt-install.log" 2>&1 ||
        die "apt-get install slurm-wlm munge failed, see $LOG/apt-install.log"
}

# ---------------------------------------------------------------- munge

# munge_works SOCKET: a credential round-trips through the munged at SOCKET.
munge_works() {
    [[ -S "$1" ]] || return 1
    munge -n -S "$1" 2>/dev/null | unmunge -S "$1" >/dev/null 2>&1
}

# Sets MUNGE_SOCKET. Reuses a working system munged; otherwise starts our own
# with its own key and socket in the state dir. munged insists that the key is
# 0600 and owned by its user, and that the socket's dir is 0755 (clients must
# reach the socket).
ensure_munge() {
    if munge_works "$MUNGE_SOCKET_SYSTEM"; then
        MUNGE_SOCKET="$MUNGE_SOCKET_SYSTEM"
        log "using the system munged ($MUNGE_SOCKET)"
        return 0
    fi
    MUNGE_SOCKET="$MUNGE_SOCKET_OWN"
    if pid_alive munged "$RUN/munged.pid" && munge_works "$MUNGE_SOCKET"; then
        return 0
    fi
    # Run munged as the unprivileged `munge` user the package creates when it
    # exists (munged warns about running as root); root otherwise.
    local user=root
    id munge >/dev/null 2>&1 && user=munge
    mkdir -p "$MUNGE_DIR"
    chmod 0755 "$MUNGE_DIR"
    if [[ ! -s "$MUNGE_DIR/munge.key" ]]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_DIR/munge.key"
        else
            dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chmod 0600 "$MUNGE_DIR/munge.key"
    chown -R "$user:" "$MUNGE_DIR"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    log "starting munged (socket $MUNGE_SOCKET)"
    # munged writes its pid file into the dir it owns; we copy the pid to $RUN
    # so stop knows this munged is ours.
    runuser -u "$user" -- munged \
        --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" 9>&- ||
        die "munged failed to start, see $MUNGE_DIR/munged.log"
    local i
    for ((i = 0; i < 50; i++)); do
        munge_works "$MUNGE_SOCKET" && break
        sleep 0.1
    done
    munge_works "$MUNGE_SOCKET" || die "munged not answering on $MUNGE_SOCKET, see $MUNGE_DIR/munged.log"
    cp "$MUNGE_DIR/munged.pid" "$RUN/munged.pid"
}

# ---------------------------------------------------------------- config

# Writes $CONF. The node line comes from `slurmd -C` (CPUs, sockets, cores,
# threads, RealMemory exactly as slurmd will detect them, so the node is not
# drained for a mismatch).
write_conf() {
    local hw
    hw="$(SLURM_CONF=/dev/null slurmd -C 2>/dev/null | grep -m1 '^NodeName=' || true)"
    if [[ -z "$hw" ]]; then
        # Fallback: nproc and MemTotal (MiB), in the same form.
        hw="NodeName=$NODE CPUs=$(nproc) RealMemory=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))"
    fi
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh on $(date -u +%FT%TZ); regenerated at each start.
ClusterName=hhnas-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root

AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: plain process tracking, no task binding/confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: sacct has nothing to read.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

SchedulerType=sched/backfill
SelectType=select/cons_tres
# Cores only: memory is not a consumable resource, so jobs without --mem do
# not each grab the whole node's memory and can share the node.
SelectTypeParameters=CR_Core
# A DOWN node (e.g. after slurmd restarts) returns to service on registration.
ReturnToService=2
# Jobs may be requeued (scontrol requeue, node failure).
JobRequeue=1
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true

$hw NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

# ---------------------------------------------------------------- start/stop

ctld_alive() { pid_alive slurmctld "$RUN/slurmctld.pid"; }
slurmd_alive() { pid_alive slurmd "$RUN/slurmd.pid"; }

# The node's state as sinfo prints it ("idle", "mixed", "down*", ...).
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

print_env_hint() {
    log "cluster is up; for sbatch/squeue/scontrol/scancel run:"
    printf 'export SLURM_CONF=%s\n' "$CONF"
}

cmd_start() {
    mkdir -p "$STATE" "$RUN" "$LOG"
    take_lock
    if ctld_alive && slurmd_alive && [[ -s "$CONF" ]]; then
        log "already running (slurmctld pid $(pidof_file "$RUN/slurmctld.pid"), slurmd pid $(pidof_file "$RUN/slurmd.pid"), state $STATE)"
        print_env_hint
        return 0
    fi
    local t0=$SECONDS
    ensure_packages
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    ensure_munge
    # Only rewrite the conf when slurmctld is down: a running one keeps the
    # file it read (half-started state: slurmd died, slurmctld still up).
    ctld_alive || write_conf
    if ! ctld_alive; then
        log "starting slurmctld"
        slurmctld -f "$CONF" 9>&- || die "slurmctld failed to start, see $LOG/slurmctld.log"
    fi
    if ! slurmd_alive; then
        log "starting slurmd"
        slurmd -f "$CONF" -N "$NODE" 9>&- || die "slurmd failed to start, see $LOG/slurmd.log"
    fi
    # Wait until the node answers and is schedulable. A fresh cluster shows
    # "idle"; one restarted with recovered running jobs may show mixed/allocated.
    local st="" deadline=$((SECONDS + START_TIMEOUT)) logs="$LOG/slurmctld.log $LOG/slurmd.log"
    [[ "$MUNGE_SOCKET" == "$MUNGE_SOCKET_OWN" ]] && logs+=" $MUNGE_DIR/munged.log"
    while ((SECONDS < deadline)); do
        st="$(node_state || true)"
        case "$st" in
        idle | mixed | allocated | completing) break ;;
        esac
        sleep 0.5
    done
    case "$st" in
    idle | mixed | allocated | completing) ;;
    *)
        # Do not leave a half-started cluster behind; the logs stay.
        stop_daemons
        die "node $NODE not idle after ${START_TIMEOUT}s (sinfo state: '${st:-none}'); logs: $logs"
        ;;
    esac
    log "node $NODE is $st after $((SECONDS - t0)) s (slurm $(sinfo -V 2>/dev/null | awk '{print $2}'), state dir $STATE)"
    print_env_hint
}

# Stops the daemons whose pid files are in $RUN, i.e. only those start started.
stop_daemons() {
    # slurmd first, so slurmctld does not see a node go unresponsive first.
    stop_pid slurmd "$RUN/slurmd.pid"
    stop_pid slurmctld "$RUN/slurmctld.pid"
    # munged only if we started it (its pid is in $RUN only then).
    stop_pid munged "$RUN/munged.pid"
}

cmd_stop() {
    local keep_jobs=0
    [[ "${1:-}" == "--keep-jobs" ]] && keep_jobs=1
    [[ -d "$STATE" ]] || { log "not running (no $STATE)"; return 0; }
    take_lock
    if ((!keep_jobs)) && ctld_alive; then
        # Cancel every job of this cluster and let their steps end, so no
        # slurmstepd / job processes are left behind once slurmd is gone.
        local jobs
        jobs="$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)"
        if [[ -n "${jobs// /}" ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086 # word-splitting the job id list is intended
            scancel $jobs 2>/dev/null || true
            local i
            for ((i = 0; i < 150; i++)); do
                [[ -z "$(squeue -h -o '%A' 2>/dev/null || true)" ]] && break
                sleep 0.2
            done
        fi
    fi
    stop_daemons
    log "stopped (state kept in $STATE)"
}

cmd_status() {
    local up=1 name
    for name in slurmctld slurmd munged; do
        if pid_alive "$name" "$RUN/$name.pid"; then
            printf '%-10s running (pid %s)\n' "$name" "$(pidof_file "$RUN/$name.pid")"
        elif [[ "$name" == munged ]] && munge_works "$MUNGE_SOCKET_SYSTEM"; then
            printf '%-10s system munged (%s)\n' "$name" "$MUNGE_SOCKET_SYSTEM"
        else
            printf '%-10s stopped\n' "$name"
            up=0
        fi
    done
    printf 'SLURM_CONF=%s\n' "$CONF"
    if ((up)); then
        sinfo || true
        squeue || true
        return 0
    fi
    return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status ;;
env) printf 'export SLURM_CONF=%s\n' "$CONF" ;;
-h | --help | help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" ;;
*)
    echo "usage: $0 {start|stop [--keep-jobs]|status|env}" >&2
    exit 2
    ;;
esac
