#!/usr/bin/env bash
# A single-node Slurm with accounting on this machine, for tests and CI: up | down | status.
#
#   up      install Debian's Slurm 22.05, munge, slurmdbd and MariaDB if missing (apt-get, no recommends),
#           write configs for this host, start munged (as munge), mariadbd, slurmdbd, slurmctld, slurmd
#           directly (no systemd) and wait until a node is idle and sacct answers. Idempotent: daemons
#           already running are left alone, so a second `up` returns at once.
#   down    stop every daemon `up` started, by the pid it recorded; leave packages and configs in place.
#   status  exit 0 when the cluster answers (scontrol ping, an idle node, sacct), 1 otherwise.
#
# Needs root (apt-get, daemons). Logs: /var/log/sweep-slurm/. Cluster name: sweep; partition: debug.
set -euo pipefail

CLUSTER=sweep
PARTITION=${SWEEP_SLURM_PARTITION:-debug}
LOG=/var/log/sweep-slurm
RUN=/run/sweep-slurm
ETC=/etc/slurm
DB_PASS=sweep-slurm-local   # MariaDB listens on its socket only (no network); the password never leaves the host
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

say() { printf '[slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process the file names is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what did not come up within ${limit} s (logs in $LOG)"
        sleep 0.2
    done
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    say "installing ${missing[*]} (apt-get, --no-install-recommends)"
    # Keep maintainer scripts from starting services: we start the daemons ourselves, without systemd.
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1; fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$LOG/apt.log" 2>&1; } \
        || { ((created)) && rm -f "$policy"; tail -20 "$LOG/apt.log" >&2; die "apt-get install failed"; }
    ((created)) && rm -f "$policy"
    return 0
}

write_if_changed() {  # write_if_changed FILE MODE: stdin -> FILE when its text differs
    local tmp; tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return; fi
    install -m "$2" "$tmp" "$1"; rm -f "$tmp"
}

write_configs() {
    local host node
    host=$(hostname -s)
    # slurmd -C describes this host (CPUs, sockets, cores, threads, RealMemory) in slurm.conf syntax.
    node=$(slurmd -C | head -1)
    [[ $node == NodeName=* ]] || die "slurmd -C gave no node line: $node"
    mkdir -p "$ETC" /var/spool/slurmctld /var/spool/slurmd
    write_if_changed "$ETC/slurm.conf" 644 <<EOF
# Written by scripts/slurm/slurm.sh for $host; rewritten on every \`make slurm-up\`.
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No systemd or cgroup delegation here: track job processes by parentage, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
# Time-limit kills: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=5
OverTimeLimit=0
MinJobAge=60
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF
# Written by scripts/slurm/slurm.sh; accounting for \`sacct\` in MariaDB on this host.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    [[ -s /etc/munge/munge.key ]] || { say "creating the munge key"; mungekey --create --keyfile=/etc/munge/munge.key; }
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    # A munged killed uncleanly leaves its socket and lock behind; they block a new one.
    alive /run/munge/munged.pid || rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    say "starting munged (as munge; it refuses root)"
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
    if alive /run/mysqld/mariadb.pid && mariadb-admin ping >/dev/null 2>&1; then return; fi
    install -d -o mysql -g mysql -m 755 /run/mysqld "$LOG/mariadb"   # mariadbd writes these as mysql
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising the MariaDB data folder"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >"$LOG/mariadb-install.log" 2>&1
    fi
    say "starting mariadbd (socket only, no network)"
    # Small buffers: a few hundred accounting rows, on a 2-core machine shared with the tests.
    setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mariadb.pid --skip-networking --innodb-buffer-pool-size=32M \
        --innodb-log-file-size=16M --performance-schema=OFF --log-error="$LOG/mariadb/error.log" \
        </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadbd mariadb-admin ping
    mariadb <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurmdbd() {
    if alive "$RUN/slurmdbd.pid"; then return; fi
    say "starting slurmdbd"
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

start_slurmctld() {
    if alive "$RUN/slurmctld.pid"; then
        if [[ $CONFIG_CHANGED == 1 ]]; then say "reconfiguring slurmctld"; scontrol reconfigure; fi
        return 0
    fi
    say "starting slurmctld"
    slurmctld
    wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
    if alive "$RUN/slurmd.pid"; then return; fi
    say "starting slurmd"
    slurmd
}

node_idle() { sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'; }

cmd_up() {
    local t0=$SECONDS
    [[ $(id -u) == 0 ]] || die "needs root (apt-get and the daemons)"
    mkdir -p "$LOG" "$RUN"
    install_packages
    local before after
    before=$( (cat "$ETC/slurm.conf" "$ETC/slurmdbd.conf" 2>/dev/null || true) | md5sum)
    write_configs
    after=$(cat "$ETC/slurm.conf" "$ETC/slurmdbd.conf" | md5sum)
    CONFIG_CHANGED=0; [[ $before == "$after" ]] || CONFIG_CHANGED=1
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    # A node that was down when slurmctld last ran comes back by itself (ReturnToService=2); one left
    # drained by a killed slurmd needs a resume.
    if sinfo -h -N -o '%T' | grep -Eq 'drain|down'; then scontrol update nodename="$(hostname -s)" state=resume || true; fi
    wait_for 60 "an idle node" node_idle
    wait_for 30 sacct sacct -n -X -S now
    say "up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: TERM the recorded pid, wait up to 15 s, then KILL it
    local pid
    alive "$2" || { rm -f "$2"; return 0; }
    pid=$(cat "$2")
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$2"
}

cmd_down() {  # TERM every daemon at once (each saves its state), then wait for all; KILL after 15 s
    local t0=$SECONDS name file pid pids=()
    for pair in slurmd:$RUN/slurmd.pid slurmctld:$RUN/slurmctld.pid slurmdbd:$RUN/slurmdbd.pid \
                mariadbd:/run/mysqld/mariadb.pid munged:/run/munge/munged.pid; do
        name=${pair%%:*} file=${pair#*:}
        if alive "$file"; then
            pid=$(cat "$file"); pids+=("$pid"); say "stopping $name (pid $pid)"; kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$file"
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then say "pid $pid ignored TERM for 15 s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
    done
    say "down in $((SECONDS - t0)) s"
}

cmd_status() {
    command -v scontrol >/dev/null || { echo "slurm: not installed"; return 1; }
    scontrol ping >/dev/null 2>&1 || { echo "slurm: slurmctld does not answer"; return 1; }
    node_idle || { echo "slurm: no usable node ($(sinfo -h -N -o '%N %T' | tr '\n' ' '))"; return 1; }
    sacct -n -X -S now >/dev/null 2>&1 || { echo "slurm: sacct does not answer (slurmdbd down?)"; return 1; }
    echo "slurm: up ($(sinfo -h -o '%P %D %T %c CPUs'))"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
