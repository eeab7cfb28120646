"""CPU time of processes a stage starts but never waits for.

A stage's profile counts its own CPU and its waited-for children's (getrusage). A local
Ray's workers are children of its raylet, which is killed at shutdown without waiting for
them, so their CPU (most of train's) was missing from train's `cpu_s`. `record()` adds up,
just before such processes are stopped, the CPU of every living descendant below this
process's own children; the children themselves are waited for at shutdown, which counts
them (and whatever they waited for) in RUSAGE_CHILDREN.
"""

from __future__ import annotations

import psutil

_recorded_s = 0.0


def record() -> float:
    """Add the grandchildren's (and deeper) CPU seconds to the total; what this call added."""
    global _recorded_s
    me = psutil.Process()
    children = {child.pid for child in me.children()}
    added = 0.0
    for process in me.children(recursive=True):
        if process.pid in children:
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:  # it ended meanwhile: its parent counted it, or nobody can
            continue
        added += times.user + times.system + times.children_user + times.children_system
    _recorded_s += added
    return added


def recorded_s() -> float:
    """CPU seconds of unwaited descendants recorded so far in this process."""
    return _recorded_s
