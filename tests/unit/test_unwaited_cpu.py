"""CPU time of descendants nobody waits for (a local Ray's workers) reaches the profile."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: the test session's own servers (MLflow's workers) are
# grandchildren of pytest too. It starts a child that starts a grandchild burning about a
# second of CPU, then both sleep: the grandchild is never waited for, like a raylet's
# workers, and is recorded while it lives.
SCRIPT = """
import json, subprocess, sys
import psutil
from mlbatch import unwaited_cpu

PARENT = '''
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time\\\\nend = time.process_time() + 1\\\\n"
                  "while time.process_time() < end: pass\\\\nprint('burnt', flush=True)\\\\n"
                  "time.sleep(60)"], stdout=sys.stdout)
time.sleep(60)
'''
child = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
try:
    assert child.stdout.readline().strip() == "burnt"
    before = unwaited_cpu.recorded_s()
    added = unwaited_cpu.record()
    print(json.dumps({"added": added, "recorded": unwaited_cpu.recorded_s() - before}))
finally:
    for process in psutil.Process(child.pid).children(recursive=True):
        process.kill()
    child.kill()
    child.wait()
"""


def test_a_living_grandchild_s_cpu_is_recorded():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The grandchild's one second and its start-up; the child is left to RUSAGE_CHILDREN,
    # which counts it once it has been waited for.
    assert 0.9 <= result["added"] < 2.5, result
    assert result["recorded"] == result["added"]
