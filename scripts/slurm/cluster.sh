#!/usr/bin/env bash
# A throw-away one-node Slurm cluster on localhost, for tests and CI.
#
#   cluster.sh install      install slurm-wlm + munge with apt-get (if missing)
#   cluster.sh start DIR    start munged (or reuse it), slurmctld, slurmd; all state under DIR;
#                           last stdout line: export SLURM_CONF=DIR/slurm.conf
#   cluster.sh stop DIR     stop the daemons started by `start DIR`
#
# Needs root (slurmd runs jobs as their submitter). No systemd/cgroups needed.
# Optional env: SLURM_TEST_CTLD_PORT (6817), SLURM_TEST_SLURMD_PORT (6818), SLURM_TEST_CRED_EXPIRE (5).
# One cluster per machine at a time unless the ports differ.
# The facts behind the settings below were measured on these machines (shared notes: slurm.md).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }            # $1 = TCP port, listened on?
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }   # $1 = pid file

cmd_install() {
  if command -v sbatch >/dev/null && command -v slurmctld >/dev/null; then
    log "slurm already installed"; return 0
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2
}

# Reuse a working munged; otherwise start one and record that in $DIR/munged.started.
start_munge() {
  if pgrep -x munged >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    as_root mungekey --create --keyfile=/etc/munge/munge.key
    as_root chown munge:munge /etc/munge/munge.key
    as_root chmod 0400 /etc/munge/munge.key
  fi
  as_root mkdir -p /run/munge
  as_root chown munge:munge /run/munge
  as_root chmod 0755 /run/munge
  as_root runuser -u munge -- /usr/sbin/munged
  touch "$DIR/munged.started"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged does not answer (munge -n | unmunge fails)"
}

write_conf() {
  local host node
  host=$(hostname -s)
  # Hardware line as slurmd sees it, minus RealMemory (forced small) and UpTime.
  node=$(slurmd -C | head -n1 | sed -E 's/ RealMemory=[0-9]+//; s/ UpTime=[^ ]*//')
  case "$node" in "NodeName=$host "*) ;; *) die "slurmd -C gave '$node', not NodeName=$host";; esac
  cat > "$CONF.tmp" <<CONF
# Written by scripts/slurm/cluster.sh; one node, no cgroups, no accounting.
ClusterName=brasa-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-6817}
SlurmdPort=${SLURM_TEST_SLURMD_PORT:-6818}
SlurmUser=root
AuthType=auth/munge
# A requeued job may start again only cred_expire+1 s after the requeue (default 120 s;
# 5 is the least Slurm 22.05 accepts -- below it falls back to 120), then a scheduler pass
# (every sched_interval s). Measured: requeue -> running again in ~6.7 s.
AuthInfo=cred_expire=${SLURM_TEST_CRED_EXPIRE:-5}
SchedulerParameters=sched_interval=2,batch_sched_delay=0
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue --states=all / scontrol show job for an hour.
MinJobAge=3600
MaxArraySize=1001
ReturnToService=2
KillWait=5
MailProg=/bin/true
$node NodeAddr=127.0.0.1 RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$CONF.tmp" "$CONF"
}

fail_with_logs() {
  log "error: $*"
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

cmd_start() {
  mkdir -p "$DIR"/{state,spool,log,run}
  DIR=$(cd "$DIR" && pwd); CONF=$DIR/slurm.conf
  start_munge
  if ! alive "$DIR/run/slurmctld.pid" || ! alive "$DIR/run/slurmd.pid"; then write_conf; fi
  export SLURM_CONF=$CONF
  local p
  for p in "${SLURM_TEST_CTLD_PORT:-6817}:slurmctld" "${SLURM_TEST_SLURMD_PORT:-6818}:slurmd"; do
    if ! alive "$DIR/run/${p#*:}.pid" && busy "${p%%:*}"; then
      die "port ${p%%:*} (${p#*:}) already in use: another cluster running? (set SLURM_TEST_*_PORT)"
    fi
  done
  alive "$DIR/run/slurmctld.pid" ||
    slurmctld -f "$CONF" >>"$DIR/log/slurmctld.out" 2>&1 || fail_with_logs "slurmctld did not start"
  alive "$DIR/run/slurmd.pid" ||
    slurmd -f "$CONF" >>"$DIR/log/slurmd.out" 2>&1 || fail_with_logs "slurmd did not start"
  local state=""
  for _ in $(seq 60); do    # up to ~30 s
    state=$(sinfo -h -o %T 2>/dev/null || true)
    case "$state" in idle|mixed|allocated) break;; esac
    sleep 0.5
  done
  case "$state" in idle|mixed|allocated) ;; *) fail_with_logs "node state is '$state', not idle after 30 s";; esac
  alive "$DIR/run/slurmctld.pid" || fail_with_logs "slurmctld exited"
  alive "$DIR/run/slurmd.pid" || fail_with_logs "slurmd exited"
  log "cluster up in $DIR (node $state)"
  echo "export SLURM_CONF=$CONF"
}

stop_pidfile() {   # $1 = pid file; TERM, wait up to 15 s, then KILL
  local pid
  alive "$1" || return 0
  pid=$(cat "$1")
  as_root kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $pid ($1) ignored TERM; killing"
  as_root kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
  [ -d "$DIR" ] || { log "no $DIR; nothing to stop"; return 0; }
  stop_pidfile "$DIR/run/slurmd.pid"
  stop_pidfile "$DIR/run/slurmctld.pid"
  if [ -e "$DIR/munged.started" ]; then
    stop_pidfile /run/munge/munged.pid
    rm -f "$DIR/munged.started"
  fi
  log "stopped"
}

case "${1:-}" in
  install) cmd_install ;;
  start|stop) [ $# -eq 2 ] || die "usage: $0 $1 DIR"; DIR=$2; "cmd_$1" ;;
  *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
