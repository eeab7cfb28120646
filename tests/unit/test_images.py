"""Dockerfiles: linted, one per stage plus the controller, each installing its own extra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mlbatch.spec import STAGES

IMAGES = Path(__file__).resolve().parents[2] / "images"
NAMES = [*STAGES, "predict", "controller"]


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_shape(name: str):
    text = (IMAGES / name / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"
    extra = "kubernetes" if name == "controller" else name
    assert f"-c constraints.txt '.[{extra}]'" in text
    assert "USER 65532:65532" in text and "HOME=/tmp" in text
    assert 'io.mlbatch.code-version="${CODE_VERSION}"' in text
    if name != "controller":
        assert "MLBATCH_CODE_VERSION=${CODE_VERSION}" in text


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    files = [str(IMAGES / name / "Dockerfile") for name in NAMES]
    result = subprocess.run([hadolint, "--failure-threshold", "warning", *files],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


ROOT = IMAGES.parent
OPENMP_IMAGES = ["train", "evaluate", "predict"]  # XGBoost and LightGBM load libgomp


@pytest.mark.parametrize("name", NAMES)
def test_dependencies_install_in_a_layer_before_the_sources(name: str):
    text = (IMAGES / name / "Dockerfile").read_text()
    extra = "kubernetes" if name == "controller" else name
    requirements = text.index(f"requirements.py {extra} > requirements.txt")
    assert requirements < text.index("COPY lib ./lib") < text.index("--no-deps")


def test_the_requirements_script_lists_the_base_and_one_extra():
    result = subprocess.run([sys.executable, IMAGES / "requirements.py", "etl"], cwd=ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    lines = result.stdout.splitlines()
    assert any(line.startswith("pydantic") for line in lines)
    assert any(line.startswith("dask[dataframe]") for line in lines)
    assert not any(line.startswith("ray") for line in lines)


@pytest.mark.parametrize("name", OPENMP_IMAGES)
def test_openmp_is_installed_only_where_the_base_lacks_it(name: str):
    text = (IMAGES / name / "Dockerfile").read_text()
    assert "if ! dpkg -s libgomp1" in text and "apt-get install" in text
    # Before the code version: the layer stays cached across code changes.
    assert text.index("dpkg -s libgomp1") < text.index("ARG CODE_VERSION")


def test_the_local_base_has_what_the_images_need():
    script = (IMAGES / "base" / "build.sh").read_text()
    packages = script.split("packages=", 1)[1].split()[0].split(",")
    assert {"python3-venv", "python-is-python3", "ca-certificates", "libgomp1"} <= set(packages)
    assert "debootstrap --variant=minbase" in script and "update-ca-certificates" in script
    for path in (IMAGES / "base" / "build.sh", IMAGES / "podman-config.sh"):
        subprocess.run(["sh", "-n", str(path)], check=True)


def test_the_recipe_hash_is_stable_and_builds_nothing():
    hashes = {
        subprocess.run([IMAGES / "base" / "build.sh", "--recipe-hash"], capture_output=True,
                       text=True, check=True).stdout.strip()
        for _ in range(2)
    }  # fmt: skip
    assert len(hashes) == 1 and len(hashes.pop()) == 12


def test_a_base_built_from_the_same_recipe_is_kept():
    """A rebuilt base is a new image id under every image's layers: build.sh keeps one
    whose recipe label matches, and only BASE_REBUILD=1 (or another recipe) rebuilds."""
    script = IMAGES / "base" / "build.sh"
    # As nobody: a build that goes on stops at the root check, touching nothing. (The
    # recipe hashes the CA files nobody can read, so nobody computes it too.)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] * (os.geteuid() == 0)
    recipe = subprocess.run([*nobody, script, "--recipe-hash"], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="mlbatch-engine-"))  # nobody must run the engine
    folder.chmod(0o755)
    engine = folder / "engine"  # answers `image inspect` with a label, fails otherwise
    engine.write_text('#!/bin/sh\n[ "$1 $2" = "image inspect" ] && echo "$LABEL" && exit 0\n'
                      "echo unexpected: $@ >&2; exit 9\n")  # fmt: skip
    engine.chmod(0o755)

    def build(label: str, **extra: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "BASE_REBUILD"}
        env.update(CONTAINER_ENGINE=str(engine), LABEL=label, **extra)
        return subprocess.run([*nobody, script, "localhost/test-base"], capture_output=True,
                              text=True, env=env)  # fmt: skip

    try:
        kept = build(recipe)
        assert kept.returncode == 0 and "kept" in kept.stdout, kept.stderr
        for other in (build("0123456789ab"), build(recipe, BASE_REBUILD="1")):
            assert other.returncode == 2 and "need root" in other.stderr, other.stderr
    finally:
        shutil.rmtree(folder)


def test_podman_config_selects_runc_lower_ulimits_and_its_own_storage(tmp_path):
    result = subprocess.run([IMAGES / "podman-config.sh", tmp_path / "podman"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    containers = (tmp_path / "podman" / "containers.conf").read_text()
    assert 'runtime = "runc"' in containers and "nofile=1024:1024" in containers
    assert (
        f'graphroot = "{tmp_path}/podman/storage"'
        in (tmp_path / "podman" / "storage.conf").read_text()
    )
    assert result.stdout.startswith("export CONTAINERS_CONF=")


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_make_images_and_base_image(engine: str):
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "base-image", "images", f"CONTAINER_ENGINE={engine}",
         "BASE_IMAGE=localhost/mlbatch-base:bookworm"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    script = result.stdout
    assert f"CONTAINER_ENGINE={engine} images/base/build.sh localhost/mlbatch-base:bookworm" in (
        script
    )
    # Docker's BuildKit gets --provenance=false (an attestation breaks `kind load`).
    flags = "--network=host --provenance=false" if engine == "docker" else "--network=host"
    base = "--build-arg BASE_IMAGE=localhost/mlbatch-base:bookworm"
    assert f"{engine} build {flags} {base}" in script
    assert "images/$name/Dockerfile" in script
    for name in NAMES:
        assert name in script
