"""The one-node cluster's scripts (cluster/): pinned versions in one place, scripts that
parse. Starting the cluster is tests/cluster's job."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def pinned() -> dict[str, str]:
    text = (CLUSTER / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, flags=re.M))


def test_the_wrapper_module_requires_the_pinned_versions():
    versions = pinned()
    go_mod = (CLUSTER / "kube/go.mod").read_text()
    required = dict(re.findall(r"^\s+(\S+) (v\S+)(?: // indirect)?$", go_mod, flags=re.M))
    assert required["k8s.io/kubernetes"] == versions["KUBERNETES_VERSION"]
    assert required["helm.sh/helm/v4"] == versions["HELM_VERSION"]
    assert required["go.etcd.io/etcd/server/v3"] == versions["ETCD_VERSION"]
    # Every staging module is replaced by the published v0.<minor>.<patch> of this release.
    staging = "v0." + versions["KUBERNETES_VERSION"].removeprefix("v1.")
    replaced = re.findall(r"^\s+(k8s.io/\S+) => \S+ (v\S+)$", go_mod, flags=re.M)
    assert len(replaced) > 25
    assert {version for _, version in replaced} == {staging}


@pytest.mark.parametrize("script", sorted(p.name for p in CLUSTER.glob("*.sh")))
def test_script_parses(script):
    result = subprocess.run(["bash", "-n", str(CLUSTER / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_versions_are_pinned_exactly():
    for name, value in pinned().items():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", value), f"{name}={value} is not an exact version"
