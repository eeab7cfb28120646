"""The code version: a hash of a stage's package, the shared library, the constraints and
the requirements in pyproject.toml that the images install.

It keys the cache and tags the images. Images bake it in as MLBATCH_CODE_VERSION, since an
installed package may not carry the constraints file it was built with.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
ENV_VAR = "MLBATCH_CODE_VERSION"
# The extras every image installs (images/requirements.py --images lists the same).
IMAGE_EXTRAS = ("etl", "explore", "features", "train", "evaluate", "predict", "kubernetes")


def _source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _constraints_file() -> Path | None:
    # In a checkout the library sits at <repo>/lib/mlbatch; images say where they keep it.
    candidate = Path(
        os.environ.get("MLBATCH_CONSTRAINTS") or LIBRARY_DIR.parent.parent / "constraints.txt"
    )
    return candidate if candidate.is_file() else None


def _requirements(constraints: Path) -> bytes:
    """The requirements the images install (every stage's and the controller's: one shared
    runtime, images/runtime/Dockerfile), from the pyproject.toml beside the constraints
    file; other edits to it change nothing."""
    pyproject = constraints.parent / "pyproject.toml"
    if not pyproject.is_file():
        return b""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    lines = list(project.get("dependencies", []))
    for extra in IMAGE_EXTRAS:
        lines += ["--", *extras.get(extra, [])]
    return "\n".join(lines).encode()


@lru_cache
def code_version(stage: str | None = None) -> str:
    """12 hex digits; the same source and pins give the same version on every machine.

    A stage image sets MLBATCH_CODE_VERSION to its own version; the controller computes
    every stage's version from the sources it carries.
    """
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    digest = hashlib.sha256()
    roots = [("mlbatch", LIBRARY_DIR)]
    if stage is not None:
        import mlbatch_jobs

        roots.append((f"mlbatch_jobs/{stage}", Path(mlbatch_jobs.__file__).parent / stage))
    for name, root in roots:
        for path in _source_files(root):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    constraints = _constraints_file()
    if constraints is not None:
        digest.update(b"constraints.txt\0" + constraints.read_bytes())
        digest.update(b"pyproject.toml\0" + _requirements(constraints))
    return digest.hexdigest()[:12]


def runtime_version() -> str:
    """The tag of the runtime image every image builds on: it holds every stage's code."""
    import mlbatch_jobs

    packages = Path(mlbatch_jobs.__file__).parent
    stages = sorted(p.name for p in packages.iterdir() if (p / "__main__.py").is_file())
    versions = [code_version(stage) for stage in stages] + [code_version()]
    return hashlib.sha256(" ".join(versions).encode()).hexdigest()[:12]


if __name__ == "__main__":
    # `python -m mlbatch.codeversion [STAGE | --runtime]`: the image tag of a stage (or the
    # controller, or the runtime image they share).
    argument = sys.argv[1] if len(sys.argv) > 1 else None
    version = runtime_version() if argument == "--runtime" else code_version(argument)
    sys.stdout.write(version + "\n")
