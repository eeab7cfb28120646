#!/usr/bin/env bash
# Storage for the one-node cluster: a `standard` StorageClass (kind's name for its
# default) and a few hostPath PersistentVolumes under the state folder, bound when a pod
# needs them, which is what kind's local-path provisioner gives a PVC there. Run by
# cluster/up.sh; each volume is a folder any pod user may write (hostPath gets no fsGroup).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
{
  cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
  for n in 1 2 3 4; do
    mkdir -p "$STATE/volumes/pv$n" && chmod 1777 "$STATE/volumes/pv$n"
    cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: mlbatch-local-pv$n
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: $STATE/volumes/pv$n, type: Directory}
YAML
  done
} | kubectl apply -f - >/dev/null
