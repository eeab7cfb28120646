"""The stage contract, as a runtime every stage program uses.

`python -m mlbatch_jobs.<stage> --run <run-uri> --attempt <id>` parses its arguments,
captures and uploads its log, loads the run's spec and upstream manifests, does its work
in a local output folder, uploads the outputs under `<stage>/attempts/<id>/` and commits
the manifest last. Exit codes: 0 ok, 2 bad input, 3 validation/gate failed, 4 superseded,
anything else retryable.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from mlbatch import cache, storage, unwaited_cpu
from mlbatch.codeversion import code_version
from mlbatch.errors import BadInput, ExitCode, MlbatchError, Superseded
from mlbatch.logs import LOG_DIR, LogCapture
from mlbatch.manifest import (
    Input,
    Manifest,
    OutputFile,
    Profile,
    commit,
    config_hash,
    load_manifest,
    output_uri,
)
from mlbatch.runs import ATTEMPT_PATTERN, RunLayout, attempt_spec_name, read_spec
from mlbatch.spec import PipelineSpec, validate_spec

TERMINATION_LOG = Path("/dev/termination-log")


@dataclass
class StageContext:
    """What a stage's work function gets: its spec, its inputs, and where to write."""

    layout: RunLayout
    stage: str
    attempt: str
    spec: PipelineSpec
    out_dir: Path  # everything written here becomes the attempt's outputs
    work_dir: Path  # scratch space, never uploaded
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[Input] = field(default_factory=list)
    rejected: bool = False  # a failed quality gate: commit anyway, then exit 3
    _upstream: dict[str, Manifest] = field(default_factory=dict)

    def upstream(self, stage: str) -> Manifest:
        """An upstream stage's manifest, recorded as an input of this stage."""
        if stage not in self._upstream:
            loaded = load_manifest(self.layout, stage)
            if loaded is None:
                raise BadInput(f"{self.stage} needs {stage}, which has not committed in this run")
            manifest, digest = loaded
            self._upstream[stage] = manifest
            self.inputs.append(
                Input(kind="manifest", uri=self.layout.manifest_uri(stage), sha256=digest)
            )
        return self._upstream[stage]

    def upstream_uri(self, stage: str, path: str) -> str:
        return output_uri(self.layout, self.upstream(stage), path)

    def fetch(self, stage: str, path: str) -> Path:
        """A local file holding an upstream output (downloaded once when remote)."""
        uri = self.upstream_uri(stage, path)
        local = storage.local_path(uri)
        if local is not None:
            return local
        target = self.work_dir / "inputs" / stage / path
        if not target.exists():
            storage.download_file(uri, target)
        return target

    def record_external(self, uri: str) -> storage.ObjectInfo:
        """Record a raw input by URI, size and version; BadInput if it does not exist."""
        info = storage.stat(uri)
        if info is None:
            raise BadInput(f"input not found: {uri}")
        self.inputs.append(Input(kind="external", uri=uri, size=info.size, version=info.version))
        return info


Work = Callable[[StageContext], None]


def run_stage(stage: str, work: Work, argv: list[str] | None = None) -> NoReturn:
    """Entry point of every stage program; never returns."""
    parser = argparse.ArgumentParser(prog=f"python -m mlbatch_jobs.{stage}")
    parser.add_argument("--run", required=True, help="run URI: <storage>/runs/<run-id>")
    parser.add_argument("--attempt", required=True, help="attempt id")
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        layout = RunLayout.from_run_uri(storage.resolve_uri(args.run))
        if not ATTEMPT_PATTERN.match(args.attempt):
            raise BadInput(f"attempt id {args.attempt!r} must be lowercase letters, digits, '-'")
    except MlbatchError as error:
        _exit(stage, error.exit_code, str(error))
    with LogCapture(layout.log_prefix(stage, args.attempt)):
        code, message = _run(stage, work, layout, args.attempt)
        if message:
            print(f"{stage}: {message}", file=sys.stderr)
    _exit(stage, code, message)


def _run(stage: str, work: Work, layout: RunLayout, attempt: str) -> tuple[int, str]:
    started = time.time()
    print(f"[mlbatch] {stage} attempt {attempt} of run {layout.run_id} ({code_version(stage)})")
    try:
        if load_manifest(layout, stage) is not None:
            raise Superseded(f"{stage} is already committed in run {layout.run_id}")
        spec_name = attempt_spec_name()
        spec = validate_spec(read_spec(layout, spec_name), source=spec_name)  # invalid: exit 2
        with tempfile.TemporaryDirectory(prefix=f"mlbatch-{stage}-") as scratch:
            out_dir = _output_dir(layout, stage, attempt, Path(scratch))
            ctx = StageContext(
                layout=layout, stage=stage, attempt=attempt, spec=spec,
                out_dir=out_dir, work_dir=Path(scratch) / "work",
            )  # fmt: skip
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            work(ctx)
            outputs = _publish(ctx)
            manifest = Manifest(
                run_id=layout.run_id, stage=stage, attempt=attempt,
                status="rejected" if ctx.rejected else "succeeded",
                exit_code=ExitCode.VALIDATION_FAILED if ctx.rejected else ExitCode.OK,
                code_version=code_version(stage),
                config_hash=config_hash(cache.stage_config(spec, stage)),
                cache_key=os.environ.get(cache.CACHE_KEY_ENV) or None,
                inputs=ctx.inputs, outputs=outputs, metrics=ctx.metrics,
                profile=_profile(started), started=started, finished=time.time(),
            )  # fmt: skip
            if not commit(layout, manifest):
                raise Superseded(f"another attempt committed {stage} first")
            _record_in_cache(layout, manifest)
        print(f"[mlbatch] {stage} committed {len(outputs)} outputs; profile {manifest.profile}")
        if ctx.rejected:
            return ExitCode.VALIDATION_FAILED, "quality gate failed: " + str(
                ctx.metrics.get("gate_failures", "")
            )
        return ExitCode.OK, ""
    except MlbatchError as error:
        return error.exit_code, str(error)
    except MemoryError:
        return ExitCode.FAILED, "out of memory"
    except Exception as error:
        traceback.print_exc()
        return ExitCode.FAILED, f"{type(error).__name__}: {error}"


def _record_in_cache(layout: RunLayout, manifest: Manifest) -> None:
    try:  # the commit stands either way: a missing pointer only costs a later cache miss
        cache.record(layout.storage_uri, manifest)
    except Exception as error:
        print(f"[mlbatch] could not record {manifest.stage} in the cache: {error}")


def _output_dir(layout: RunLayout, stage: str, attempt: str, scratch: Path) -> Path:
    """On file:// the attempt folder itself (nothing to copy); elsewhere a local scratch."""
    local = storage.local_path(layout.attempt_uri(stage, attempt))
    out = local if local is not None else scratch / "out"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _publish(ctx: StageContext) -> dict[str, OutputFile]:
    """Upload every output (remote storage) and record its size and hash."""
    attempt_uri = ctx.layout.attempt_uri(ctx.stage, ctx.attempt)
    outputs = {}
    for path in sorted(p for p in ctx.out_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(ctx.out_dir).as_posix()
        if relative.split("/", 1)[0] == LOG_DIR or path.name.endswith(".tmp"):
            continue
        outputs[relative] = OutputFile(size=path.stat().st_size, sha256=storage.sha256_file(path))
        storage.upload_file(path, storage.join(attempt_uri, relative))
    return outputs


def _profile(started: float) -> Profile:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    cpu += unwaited_cpu.recorded_s()  # a local Ray's workers
    peak_kb = max(own.ru_maxrss, children.ru_maxrss)  # kilobytes on Linux
    return Profile(
        wall_s=round(time.time() - started, 3),
        cpu_s=round(cpu, 3),
        peak_rss_mb=round(peak_kb / 1024, 1),
    )


def _exit(stage: str, code: int, message: str) -> NoReturn:
    if message:
        try:  # Kubernetes shows this as the container's termination message
            TERMINATION_LOG.write_text(f"{stage}: {message}\n")
        except OSError:
            pass
    sys.stdout.flush()
    sys.exit(int(code))
