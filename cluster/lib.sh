# Shared by cluster/*.sh: the cluster's fixed names and ranges, and small helpers.
# Pods and Services avoid podman's 10.88.0.0/16 and the host resolver's 10/8 neighbours.
CACHE=${MLBATCH_CLUSTER_CACHE:-/var/tmp/mlbatch-cluster}
STATE=$CACHE/state
NODE_NAME=mlbatch-node
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DOMAIN=cluster.local
CNI_BRIDGE=mlbatch0
CONTAINERD_SOCKET=$STATE/containerd/containerd.sock
PAUSE_IMAGE=localhost/mlbatch-pause:1
export KUBECONFIG=$STATE/kubeconfig

fail() { echo "cluster: $*" >&2; exit 1; }

# start NAME PROGRAM ARGS...: run in the background in its own session, log to
# $STATE/logs/NAME.log, PID to $STATE/pids/NAME.pid.
start() {
  local name=$1 program; shift
  program=$(command -v "$1") || fail "no program $1"; shift
  # The full path as argv[0]: cluster/down.sh finds leftovers by it.
  setsid "$program" "$@" >"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pids/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds; on timeout, fail naming WHAT
# and show the tail of the newest log (the component that did not come up).
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$(( SECONDS + seconds ))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      local log; log=$(ls -t "$STATE"/logs/*.log 2>/dev/null | head -1)
      echo "cluster: $what not ready after ${seconds}s; last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      exit 1
    fi
    for pidfile in "$STATE"/pids/*.pid; do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || {
        local name; name=$(basename "$pidfile" .pid)
        echo "cluster: $name exited while waiting for $what; last lines of its log:" >&2
        tail -n 30 "$STATE/logs/$name.log" >&2; exit 1; }
    done
    sleep 1
  done
}

# The IPv4 address of the interface holding the default route (or the first global one):
# the API server advertises it, since pods cannot reach the host's 127.0.0.1.
detect_node_ip() {
  local ip
  ip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [ -n "$ip" ] || ip=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
  [ -n "$ip" ] || fail "no IPv4 address to run the node on"
  echo "$ip"
}

# write_kubeconfig USER SERVER: a kubeconfig with USER's client certificate, embedded.
write_kubeconfig() {
  local user=$1 server=$2 pki=$STATE/pki
  cat <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: mlbatch
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$user.crt")
    client-key-data: $(base64 -w0 "$pki/$user.key")
contexts:
- name: mlbatch
  context: {cluster: mlbatch, user: $user}
current-context: mlbatch
KUBECONFIG
}
