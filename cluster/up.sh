#!/usr/bin/env bash
# Starts a one-node Kubernetes on this machine from the programs cluster/build.sh built,
# as local processes (the way Kubernetes' hack/local-up-cluster.sh does): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd with Debian's runc,
# CNI (bridge), kubelet, kube-proxy and cluster-dns. Writes an admin kubeconfig to
# $STATE/kubeconfig, prints each step's time, and records every PID under $STATE/pids so
# that cluster/down.sh stops exactly what this started.
#
# Usage: sudo cluster/up.sh       (root: kubelet, containerd and kube-proxy need it)
# Environment: MLBATCH_CLUSTER_CACHE (default /var/tmp/mlbatch-cluster) holds the binaries
# and the state folder ($STATE = $MLBATCH_CLUSTER_CACHE/state).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
source "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || fail "run as root: the kubelet, containerd and kube-proxy need it"
if [ -d "$STATE/pids" ] && ls "$STATE"/pids/*.pid >/dev/null 2>&1; then
  fail "a cluster is already up (PIDs in $STATE/pids): run cluster/down.sh first"
fi
started=$SECONDS
step_start=$SECONDS
step() { echo "::: cluster-up $1: $(( SECONDS - step_start ))s (total $(( SECONDS - started ))s)"; step_start=$SECONDS; }

BIN=$("$here/build.sh")
export PATH="$BIN:$PATH"
step build
rm -rf "$STATE" && mkdir -p "$STATE"/{pids,logs,pki,etcd,cni/net.d,kubelet,config}
echo "$BIN" > "$STATE/bin"
node_ip=$(detect_node_ip)
echo "$node_ip" > "$STATE/node-ip"
echo "node $NODE_NAME at $node_ip; state in $STATE"

# Host preparation (CLUSTER-NOTES.md §2). Shared mounts for mount propagation into pods;
# more inotify instances than the 128 default (kubelet, containerd and pods watch files).
mount --make-rshared /
sysctl -qw fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288 \
  net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 2>/dev/null \
  || sysctl -qw fs.inotify.max_user_instances=512 net.ipv4.ip_forward=1

"$here/pki.sh" "$STATE/pki" "$node_ip"
for user in admin controller-manager scheduler kube-proxy node cluster-dns; do
  write_kubeconfig "$user" "https://$node_ip:6443" > "$STATE/config/$user.kubeconfig"
done
cp "$STATE/config/admin.kubeconfig" "$STATE/kubeconfig"
step certificates

# etcd: fsync off, as CI's throwaway clusters do (hack/lib/etcd.sh).
start etcd etcd --name "$NODE_NAME" --data-dir "$STATE/etcd" --unsafe-no-fsync \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --log-level warn
wait_for "etcd health" 60 curl -fsS http://127.0.0.1:2379/health
step etcd

pki=$STATE/pki
start kube-apiserver kube-apiserver \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$node_ip" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --profiling=false --v 1
wait_for "the API server's /readyz" 120 kubectl get --raw /readyz
step kube-apiserver

start kube-controller-manager kube-controller-manager \
  --kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
  --profiling=false --v 1
start kube-scheduler kube-scheduler \
  --kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --profiling=false --v 1
wait_for "the default ServiceAccount" 120 kubectl get serviceaccount default --namespace default
step controller-manager+scheduler

# containerd 2 with Debian's runc, cgroupfs (no systemd here), the locally built pause
# image pinned as the sandbox image (registry.k8s.io cannot be reached).
mkdir -p "$STATE/containerd"
cat > "$STATE/config/containerd.toml" <<EOF
version = 3
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCKET"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$PAUSE_IMAGE'
# Our root lacks CAP_SYS_RESOURCE (as in many sandboxes and rootless setups): runc then
# cannot lower a pod's oom_score_adj below containerd's own, and every sandbox fails with
# "failed to update /proc/self/oom_score_adj: Permission denied". Clamp it instead.
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = 'runc'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = '$(command -v runc)'
      SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['$BIN/cni']
  conf_dir = '$STATE/cni/net.d'
  max_conf_num = 1
EOF
start containerd containerd --config "$STATE/config/containerd.toml"
wait_for "containerd" 60 ctr --address "$CONTAINERD_SOCKET" version
step containerd

# The pause image: the one static program in an image of its own, imported like the others.
pause_dir=$(mktemp -d)
cp "$BIN/pause" "$here/pause/Containerfile" "$pause_dir/"
podman build --quiet --network=none -t "$PAUSE_IMAGE" -f "$pause_dir/Containerfile" "$pause_dir" >/dev/null
rm -rf "$pause_dir"
"$here/load-images.sh" "$PAUSE_IMAGE"
step pause-image

# CNI: one bridge for the node's pods, masquerading what leaves it; hairpin so a pod can
# reach itself through its own Service.
cat > "$STATE/cni/net.d/10-mlbatch.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "mlbatch",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF

# kubelet: cgroup v1 allowed (these VMs mount v1), no swap check, no image garbage
# collection (nothing could be pulled back) and eviction only when nearly full.
cat > "$STATE/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
address: $node_ip
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
rotateCertificates: false
serverTLSBootstrap: false
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$node_ip]
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
protectKernelDefaults: false
healthzBindAddress: 127.0.0.1
maxPods: 60
EOF
start kubelet kubelet --config "$STATE/config/kubelet.yaml" \
  --kubeconfig "$STATE/config/node.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$node_ip" --v 1
wait_for "node $NODE_NAME Ready" 180 \
  kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout 5s
kubectl label node "$NODE_NAME" --overwrite mlbatch.io/pool=general >/dev/null
"$here/storage.sh"
step kubelet

cat > "$STATE/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/config/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
conntrack: {maxPerCore: 0}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
EOF
start kube-proxy kube-proxy --config "$STATE/config/kube-proxy.yaml" --v 1
wait_for "kube-proxy" 60 curl -fsS http://127.0.0.1:10256/healthz
kubectl apply -f "$here/cluster-dns-rbac.yaml" >/dev/null
start cluster-dns cluster-dns --kubeconfig "$STATE/config/cluster-dns.kubeconfig" \
  --listen "$node_ip:53" --domain "$CLUSTER_DOMAIN"
wait_for "cluster-dns" 30 grep -q "serving" "$STATE/logs/cluster-dns.log"
step kube-proxy+dns

# KubeRay's operator, off-cluster like the rest of the control plane; its CRDs are too
# large for a client-side apply's annotation (ray-project/kuberay#410).
kubectl apply --server-side --force-conflicts -f "$BIN/kuberay-crds/" >/dev/null
start kuberay-operator kuberay-operator --metrics-addr 127.0.0.1:18080 \
  --health-probe-bind-address 127.0.0.1:18082 --enable-leader-election=false
wait_for "the KubeRay operator" 60 curl -fsS http://127.0.0.1:18082/healthz
step kuberay-operator

echo "cluster up in $(( SECONDS - started ))s: export KUBECONFIG=$STATE/kubeconfig"
