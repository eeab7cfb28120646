#!/usr/bin/env bash
# Stops everything cluster/up.sh started and what it started in turn: first the pods'
# containers (their shims outlive containerd), then each recorded PID in reverse order of
# start, then the mounts, the pod network and kube-proxy's rules. Keeps the built binaries
# and the state folder's logs; exits non-zero if anything of the cluster is still running.
#
# Usage: sudo cluster/down.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ "$(id -u)" -eq 0 ] || fail "run as root"
[ -d "$STATE" ] || { echo "no cluster state in $STATE: nothing to stop"; exit 0; }
bin=$(cat "$STATE/bin" 2>/dev/null || true)

stop_pid() { # stop_pid NAME: SIGTERM, then SIGKILL after 10 s
  local pidfile=$STATE/pids/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null && echo "cluster-down: $1 did not stop on SIGTERM: killed"
  fi
  rm -f "$pidfile"
  echo "cluster-down: stopped $1"
}

# The kubelet first, so that it restarts nothing; then every pod container and shim.
stop_pid kubelet
for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
  [ -d "$hierarchy" ] || continue
  find "$hierarchy" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCKET" 2>/dev/null
for name in cluster-dns kuberay-operator kube-proxy containerd kube-scheduler \
    kube-controller-manager kube-apiserver etcd; do
  stop_pid "$name"
done
for pidfile in "$STATE"/pids/*.pid; do [ -f "$pidfile" ] && stop_pid "$(basename "$pidfile" .pid)"; done

# Pod cgroups (deepest first), mounts under the state folder, the bridge, the network
# namespaces of pods, and kube-proxy's iptables chains.
for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
  [ -d "$hierarchy" ] && find "$hierarchy" -depth -type d -exec rmdir {} \; 2>/dev/null
done
grep -o " $STATE[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
grep -o " /run/netns/cni-[^ ]*" /proc/mounts | xargs -r -n1 umount -l 2>/dev/null
rm -f /run/netns/cni-* 2>/dev/null
ip link delete "$CNI_BRIDGE" 2>/dev/null
[ -n "$bin" ] && [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1
iptables -t nat -S 2>/dev/null | grep -q "CNI-" && \
  iptables -t nat -S POSTROUTING | grep -- "CNI-" | sed 's/^-A/-D/' | xargs -r -L1 iptables -t nat 2>/dev/null

rm -f "$STATE/kubeconfig"
left=$(pgrep -f "^$bin/" 2>/dev/null; pgrep -f "containerd-shim-runc-v2 .*$CONTAINERD_SOCKET" 2>/dev/null)
if [ -n "$left" ]; then
  echo "cluster-down: still running: $(ps -o pid=,args= -p $(echo $left | tr ' ' ,))" >&2
  exit 1
fi
echo "cluster-down: nothing of the cluster is running"
