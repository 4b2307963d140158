"""Benchmark: execute notebooks and report wall time and peak memory of the whole process tree.

The tree is the notebook's kernel with every process it starts (the Spark JVM among them) plus
the embedded Kafka broker, which runs detached. By default the broker is stopped before each
notebook, so its start-up counts as it does for a learner's first notebook (``warm=True`` keeps
it running). Budgets come from the course's developer guide: 60 s and 1.5 GB per lesson.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from coursekit import kafka

TIME_BUDGET_S = 60.0
MEMORY_BUDGET_MB = 1536.0


@dataclass
class Result:
    """One notebook's figures."""

    notebook: str
    seconds: float
    peak_mb: float
    ok: bool

    @property
    def within_budget(self) -> bool:
        return self.ok and self.seconds <= TIME_BUDGET_S and self.peak_mb <= MEMORY_BUDGET_MB


def _tree_rss(root: psutil.Process) -> int:
    """RSS of ``root``'s descendants (not ``root`` itself, the runner) and of the embedded broker."""
    procs: dict[int, psutil.Process] = {}
    try:
        procs.update({p.pid: p for p in root.children(recursive=True)})
    except psutil.Error:
        pass
    broker = kafka.status()
    if broker is not None:
        try:
            procs[broker.pid] = psutil.Process(broker.pid)
        except psutil.Error:
            pass
    total = 0
    for proc in procs.values():
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_one(path: Path, *, warm: bool = False, timeout: int = 600) -> Result:
    """Execute one notebook in a fresh kernel, sampling memory every 0.2 s."""
    if not warm:
        kafka.stop()
    out = Path(tempfile.mkdtemp(prefix="coursekit-bench-"))
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           f"--ExecutePreprocessor.timeout={timeout}", "--output-dir", str(out), str(path)]
    start = time.monotonic()
    runner = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=path.parent)
    peak = 0
    while runner.poll() is None:
        peak = max(peak, _tree_rss(runner))
        time.sleep(0.2)
    seconds = time.monotonic() - start
    ok = runner.returncode == 0
    if not ok and runner.stderr is not None:
        sys.stderr.write(runner.stderr.read().decode(errors="replace")[-3000:])
    shutil.rmtree(out, ignore_errors=True)
    return Result(path.name, seconds, peak / 2**20, ok)


def table(results: list[Result]) -> str:
    """Format results as a Markdown table with the budgets."""
    lines = [f"| notebook | wall time (s) | peak memory (MB) | within budget ({TIME_BUDGET_S:.0f} s, "
             f"{MEMORY_BUDGET_MB:.0f} MB) |", "|---|---:|---:|---|"]
    for r in results:
        verdict = "yes" if r.within_budget else ("FAILED TO RUN" if not r.ok else "NO")
        lines.append(f"| {r.notebook} | {r.seconds:.1f} | {r.peak_mb:.0f} | {verdict} |")
    return "\n".join(lines)
