"""The train stage refuses a Ray cluster running other train code (KubeRay keeps Ray pods
across a redeploy that changes their image), and says so naming both versions."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from mlbatch.errors import BadInput  # noqa: E402
from mlbatch_jobs.train import ray_runtime  # noqa: E402

ADDRESS = "ray://mlbatch-ray-1a2b3c-head-svc.ml.svc:10001"


def test_the_same_code_version_connects():
    ray_runtime.check_code_version("0123456789ab", "0123456789ab", address=ADDRESS)


def test_another_code_version_is_a_clear_error_naming_both():
    with pytest.raises(BadInput, match=r"runs train code 0ld0ld0ld0ld, but this stage is "
                                       r"0123456789ab.*ray.imageTag=0123456789ab"):  # fmt: skip
        ray_runtime.check_code_version("0ld0ld0ld0ld", "0123456789ab", address=ADDRESS)


def test_a_cluster_that_does_not_say_is_used_with_a_warning(capsys):
    ray_runtime.check_code_version(None, "0123456789ab", address=ADDRESS)
    assert "does not say its code version" in capsys.readouterr().out


class Context:
    ray_version = ray_runtime.ray.__version__
    python_version = ".".join(map(str, __import__("sys").version_info[:3]))


def test_connecting_checks_the_code_version_before_any_trial(monkeypatch):
    """ray_client asks the cluster for its version right after connecting, and a mismatch
    ends the connection before anything runs on it."""
    shutdowns = []
    monkeypatch.setenv("RAY_ADDRESS", ADDRESS)  # as the settings ConfigMap sets it
    monkeypatch.setattr(ray_runtime, "_connect", lambda address: Context())
    monkeypatch.setattr(ray_runtime, "cluster_code_version", lambda: "0ld0ld0ld0ld")
    monkeypatch.setattr(ray_runtime, "code_version", lambda stage: "0123456789ab")
    monkeypatch.setattr(ray_runtime.ray, "shutdown", lambda: shutdowns.append(1))
    with pytest.raises(BadInput, match="runs train code 0ld0ld0ld0ld"):
        with ray_runtime.ray_client(ADDRESS):
            pytest.fail("no trial may run on the wrong code")
    assert shutdowns == [1]
    monkeypatch.setattr(ray_runtime, "cluster_code_version", lambda: "0123456789ab")
    monkeypatch.setenv("RAY_ADDRESS", ADDRESS)
    with ray_runtime.ray_client(ADDRESS):
        pass
