#!/usr/bin/env bash
# The cluster's certificates with openssl alone (local-up-cluster.sh downloads cfssl,
# which cannot be reached here): one CA signs every serving and client certificate, and an
# RSA key signs ServiceAccount tokens.
#
# Usage: cluster/pki.sh DIR NODE_IP
set -euo pipefail
dir=$1 node_ip=$2
cd "$dir"
openssl_quiet() { openssl "$@" 2>/dev/null; }

openssl_quiet req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
  -subj "/CN=mlbatch-cluster-ca"
openssl_quiet genrsa -out sa.key 2048
openssl_quiet rsa -in sa.key -pubout -out sa.pub

# sign NAME SUBJECT [SUBJECT_ALT_NAMES] [USAGE]
sign() {
  local name=$1 subject=$2 sans=${3:-} usage=${4:-clientAuth}
  local ext="extendedKeyUsage=$usage"
  [ -n "$sans" ] && ext+=$'\n'"subjectAltName=$sans"
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject"
  openssl_quiet x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -out "$name.crt" -extfile <(printf '%s\n' "$ext")
  rm -f "$name.csr"
}
# The API server's first Service IP is 10.96.0.1 (the `kubernetes` Service).
sign apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip" \
  serverAuth
sign kubelet "/CN=mlbatch-node" "DNS:mlbatch-node,DNS:localhost,IP:127.0.0.1,IP:$node_ip" serverAuth
sign admin "/O=system:masters/CN=kubernetes-admin"
sign controller-manager "/CN=system:kube-controller-manager"
sign scheduler "/CN=system:kube-scheduler"
sign kube-proxy "/CN=system:kube-proxy"
# The Node authorizer and NodeRestriction know a kubelet by this exact form.
sign node "/O=system:nodes/CN=system:node:mlbatch-node"
# The API server calls kubelets (logs, exec, port-forward) as an admin.
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
sign cluster-dns "/CN=system:mlbatch:cluster-dns"
