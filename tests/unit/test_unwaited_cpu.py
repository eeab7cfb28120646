"""CPU time of descendants nobody waits for (a local Ray's workers) reaches the profile."""

from __future__ import annotations

import subprocess
import sys

import psutil

from mlbatch import unwaited_cpu

# A child that starts a grandchild burning about a second of CPU, then both sleep: the
# grandchild is never waited for by this process, like a raylet's workers.
PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time\\nend = time.process_time() + 1\\n"
                  "while time.process_time() < end: pass\\nprint('burnt', flush=True)\\n"
                  "time.sleep(60)"], stdout=sys.stdout)
time.sleep(60)
"""


def test_a_living_grandchild_s_cpu_is_recorded():
    before = unwaited_cpu.recorded_s()
    child = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burnt"
        added = unwaited_cpu.record()
    finally:
        for process in psutil.Process(child.pid).children(recursive=True):
            process.kill()
        child.kill()
        child.wait()
    # The grandchild's one second and its start-up; the child is left to RUSAGE_CHILDREN,
    # which counts it once it has been waited for.
    assert 0.9 <= added < 2.5, added
    assert unwaited_cpu.recorded_s() - before == added
