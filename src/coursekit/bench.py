"""Benchmark: execute notebooks and report wall time, peak memory and CPU time of the whole process tree.

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
    cpu_s: float = 0.0

    @property
    def cores(self) -> float:
        """The mean number of cores the notebook kept busy (CPU time over wall time)."""
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def within_budget(self) -> bool:
        return self.ok and self.seconds <= TIME_BUDGET_S and self.peak_mb <= MEMORY_BUDGET_MB


def _tree(root: psutil.Process) -> dict[int, psutil.Process]:
    """``root``'s descendants (not ``root`` itself, the runner) and the embedded broker."""
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
    return procs


def _cpu(proc: psutil.Process) -> float:
    """The process's own CPU seconds: its children are in the tree and sampled themselves (adding the
    ``children_*`` times of those it reaped would count them twice)."""
    times = proc.cpu_times()
    return times.user + times.system


def _tree_rss(root: psutil.Process, cpu: dict[int, float] | None = None) -> int:
    """RSS of :func:`_tree`; the CPU seconds each process has used so far go into ``cpu``."""
    total = 0
    for pid, proc in _tree(root).items():
        try:
            total += proc.memory_info().rss
            if cpu is not None:
                cpu[pid] = _cpu(proc)
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
    broker = kafka.status()
    cpu: dict[int, float] = {}
    if broker is not None:  # a warm broker: count only what it does during the notebook
        cpu[-1] = -_cpu(psutil.Process(broker.pid))
    start = time.monotonic()
    runner = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=path.parent)
    peak = 0
    while runner.poll() is None:
        peak = max(peak, _tree_rss(runner, cpu))
        time.sleep(0.2)
    seconds = time.monotonic() - start
    if broker is None and kafka.status() is not None:
        cpu[-1] = 0.0  # started by the notebook: all its CPU time is the notebook's, already sampled
    ok = runner.returncode == 0
    if not ok and runner.stderr is not None:
        sys.stderr.write(runner.stderr.read().decode(errors="replace")[-3000:])
    shutil.rmtree(out, ignore_errors=True)
    return Result(path.name, seconds, peak / 2**20, ok, sum(cpu.values()))


def idle_learner(seconds: float = 30.0) -> dict[str, float]:
    """Memory and CPU of a learner who has the course open but runs nothing: their broker, started and
    left idle for ``seconds``, then measured for as long again."""
    broker = kafka.start()
    time.sleep(seconds)
    proc = psutil.Process(broker.pid)
    before = _cpu(proc)
    time.sleep(seconds)
    return {"broker_rss_mb": proc.memory_info().rss / 2**20, "broker_cores": (_cpu(proc) - before) / seconds}


def table(results: list[Result]) -> str:
    """Format results as a Markdown table with the budgets."""
    lines = [f"| notebook | wall time (s) | peak memory (MB) | CPU time (s) | mean cores | within budget "
             f"({TIME_BUDGET_S:.0f} s, {MEMORY_BUDGET_MB:.0f} MB) |", "|---|---:|---:|---:|---:|---|"]
    for r in results:
        verdict = "yes" if r.within_budget else ("FAILED TO RUN" if not r.ok else "NO")
        lines.append(f"| {r.notebook} | {r.seconds:.1f} | {r.peak_mb:.0f} | {r.cpu_s:.1f} | {r.cores:.2f} "
                     f"| {verdict} |")
    return "\n".join(lines)


MIX = ("reference", "partial", "untouched", "broken", "reference", "partial", "reference", "untouched", "partial",
       "reference")


def grade_throughput(course: Path, lab: str, config: Path, n: int = 20, workers: int = 2) -> dict[str, object]:
    """Autograde ``n`` synthetic submissions of ``lab`` with ``workers`` nbgrader processes at once.

    The mix (:data:`MIX`, so any four submissions have one of each kind): 40 % reference solutions,
    30 % partial (first solution cell only), 20 % untouched releases, 10 % not valid JSON. Returns
    submissions per minute, wall time, peak memory, and the code scores each kind got (so a run also
    shows that grading in parallel grades right).
    """
    import nbformat

    from coursekit import labs

    scratch = labs.scratch_course(course, config, [lab], Path(tempfile.mkdtemp(prefix="coursekit-grade-")))
    done = labs.nbgrader(scratch, "generate_assignment", lab, "--force")
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    source = nbformat.read(scratch / "source" / lab / f"{lab}.ipynb", as_version=4)
    release = scratch / "release" / lab
    solutions = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    kinds: dict[str, str] = {}
    for i in range(n):
        student = f"w{i % workers}_s{i:03d}"
        folder = scratch / "submitted" / student / lab
        shutil.copytree(release, folder)
        target = folder / f"{lab}.ipynb"
        kind = MIX[i % len(MIX)]
        kinds[student] = kind
        if kind == "broken":
            target.write_text("{ not a notebook")
            continue
        nb = nbformat.read(target, as_version=4)
        fill = solutions if kind == "reference" else solutions[:1] if kind == "partial" else []
        by_id = {c.metadata["nbgrader"]["grade_id"]: c.source for c in fill}
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in by_id:
                cell.source = by_id[grade_id]
        nbformat.write(nb, target)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
        for i in range(n):
            gb.update_or_create_student(f"w{i % workers}_s{i:03d}")
    start = time.monotonic()
    procs = [psutil.Popen([sys.executable, "-m", "nbgrader", "autograde", lab, f"--student=w{k}_*"], cwd=scratch,
                          env=labs.venv_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for k in range(workers)]
    peak = 0
    while any(p.poll() is None for p in procs):
        total = 0
        for p in procs:
            if p.poll() is None:
                total += _tree_rss(p) + _own_rss(p)
        peak = max(peak, total)
        time.sleep(0.25)
    seconds = time.monotonic() - start
    scores: dict[str, list[float | None]] = {kind: [] for kind in dict.fromkeys(kinds.values())}
    with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
        full = gb.find_assignment(lab).max_code_score
        for student, kind in kinds.items():
            scores[kind].append(_code_score(gb, lab, student))
    expected = {"reference": {full}, "untouched": {0}, "broken": {None, 0}}
    # the first solution cell earns some points, and all of them when it is the lab's only autograded part
    one_part = sum(1 for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")
                   and not c.metadata["nbgrader"].get("solution")) == 1
    right = all(set(scores.get(kind, [])) <= want for kind, want in expected.items()) and all(
        score is not None and (score == full if one_part else 0 < score < full) for score in scores.get("partial", []))
    shutil.rmtree(scratch, ignore_errors=True)
    graded = sum(1 for kind in scores.values() for score in kind if score is not None)
    return {"submissions": n, "graded": graded, "workers": workers, "seconds": seconds,
            "per_minute": n / seconds * 60, "peak_mb": peak / 2**20,
            "scores": {kind: sorted(set(got), key=str) for kind, got in scores.items()}, "scores_right": right}


def _own_rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def _code_score(gb: object, lab: str, student: str) -> float | None:
    """A submission's autograded score, or None when it was not graded (not a notebook, say)."""
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(lab, student)  # type: ignore[attr-defined]
    except MissingEntry:
        return None
    return submission.code_score
