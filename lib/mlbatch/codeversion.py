"""The code version: a hash of a stage's package, the shared library, the constraints and
the stage's requirements in pyproject.toml (what its image installs).

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


def _source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _constraints_file() -> Path | None:
    # In a checkout the library sits at <repo>/lib/mlbatch; images say where they keep it.
    candidate = Path(
        os.environ.get("MLBATCH_CONSTRAINTS") or LIBRARY_DIR.parent.parent / "constraints.txt"
    )
    return candidate if candidate.is_file() else None


def _requirements(constraints: Path, stage: str | None) -> bytes:
    """The requirements an image of the stage installs (the controller's: kubernetes), from
    the pyproject.toml beside the constraints file; other edits to it change nothing."""
    pyproject = constraints.parent / "pyproject.toml"
    if not pyproject.is_file():
        return b""
    project = tomllib.loads(pyproject.read_text())["project"]
    extra = project.get("optional-dependencies", {}).get(stage or "kubernetes", [])
    return "\n".join([*project.get("dependencies", []), "--", *extra]).encode()


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
        digest.update(b"pyproject.toml\0" + _requirements(constraints, stage))
    return digest.hexdigest()[:12]


if __name__ == "__main__":
    # `python -m mlbatch.codeversion [STAGE]`: the image tag of a stage (or the controller).
    sys.stdout.write(code_version(sys.argv[1] if len(sys.argv) > 1 else None) + "\n")
