"""Dockerfiles: linted; one shared runtime with every dependency and the project, and one
image per stage plus the controller on top of it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlbatch import codeversion
from mlbatch.spec import STAGES

IMAGES = Path(__file__).resolve().parents[2] / "images"
ROOT = IMAGES.parent
NAMES = [*STAGES, "predict", "controller"]
RUNTIME = (IMAGES / "runtime" / "Dockerfile").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_each_image_is_the_runtime_with_its_labels_and_command(name: str):
    text = (IMAGES / name / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["ARG RUNTIME_IMAGE=localhost/mlbatch-runtime:dev", "FROM ${RUNTIME_IMAGE}"]
    assert not any(line.startswith(("RUN", "USER")) for line in lines)  # all in the runtime
    assert 'io.mlbatch.code-version="${CODE_VERSION}"' in text
    assert f'org.opencontainers.image.title="mlbatch-{name}"' in text
    if name != "controller":
        assert "MLBATCH_CODE_VERSION=${CODE_VERSION}" in text
        assert f'"mlbatch_jobs.{name}"' in text


def test_the_runtime_installs_dependencies_then_the_project_and_runs_unprivileged():
    lines = [line for line in RUNTIME.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"
    requirements = RUNTIME.index("requirements.py --images > requirements.txt")
    project = RUNTIME.index("pip install --no-cache-dir --no-deps")
    assert requirements < RUNTIME.index("COPY lib ./lib") < project
    assert "USER 65532:65532" in RUNTIME and "HOME=/tmp" in RUNTIME
    # OpenMP (XGBoost, LightGBM) only where the base lacks it, before the sources: cached.
    assert "if ! dpkg -s libgomp1" in RUNTIME and "apt-get install" in RUNTIME
    assert RUNTIME.index("dpkg -s libgomp1") < RUNTIME.index("COPY lib ./lib")


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    files = [str(IMAGES / name / "Dockerfile") for name in [*NAMES, "runtime"]]
    result = subprocess.run([hadolint, "--failure-threshold", "warning", *files],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _requirements(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, IMAGES / "requirements.py", *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout.splitlines()


def test_the_requirements_script_lists_the_base_and_the_extras_named():
    lines = _requirements("etl")
    assert any(line.startswith("pydantic") for line in lines)
    assert any(line.startswith("dask[dataframe]") for line in lines)
    assert not any(line.startswith("ray") for line in lines)
    # --images: every extra an image installs, each line once; the code version hashes
    # the same extras, so a change to any of them retags every image.
    images = _requirements("--images")
    assert len(images) == len(set(images))
    expected = set(_requirements(*codeversion.IMAGE_EXTRAS))
    assert set(images) == expected and not any(line.startswith("aiohttp") for line in images)


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _closure(lines: list[str]) -> set[str]:
    """Every distribution these requirements install, by the installed packages' metadata."""
    found: set[tuple[str, frozenset]] = set()
    todo = [Requirement(line) for line in lines]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in found:
            continue
        found.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        environments = [{"extra": extra} for extra in requirement.extras or {""}]
        todo += [
            r for r in map(Requirement, requires)
            if r.marker is None or any(r.marker.evaluate(env) for env in environments)
        ]  # fmt: skip
    return {name for name, _ in found}


def _third_party_imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    own = {"mlbatch", "mlbatch_jobs", "__future__"}
    return {name for name in names if name not in sys.stdlib_module_names | own}


@pytest.mark.parametrize("stage", [*STAGES, "predict"])
def test_a_stage_imports_only_what_its_extra_installs(stage: str):
    """`pip install mlbatch-suite[<stage>]` must run the stage: every module its package
    imports (lazy imports too) comes from the project's dependencies or the stage's extra.
    The images cannot tell any more: they share one runtime with every extra."""
    installed = _closure([*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"][stage]])
    owners = metadata.packages_distributions()
    missing = {
        module: owners.get(module, ["not installed"])
        for module in _third_party_imports(ROOT / "jobs" / stage)
        if not {canonicalize_name(d) for d in owners.get(module, [])} & installed
    }  # fmt: skip
    assert not missing, f"{stage} imports what its extra does not install: {missing}"
    if stage == "etl":  # the check can fail: etl's extra installs no training library
        assert not {"ray", "xgboost", "lightgbm"} & installed


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
    assert f"{engine} build {flags} {base}" in script and "-f images/runtime/Dockerfile" in script
    assert f"{engine} build {flags} --build-arg RUNTIME_IMAGE=$runtime" in script
    assert "images/$name/Dockerfile" in script
    for name in NAMES:
        assert name in script
