"""The kernel that autograding runs (``python -m coursekit.graderkernel``, kernel spec ``coursekit-grader``).

An IPython kernel with a memory cap on its whole process tree, so that one submission cannot take the
machine down, and (on Linux) in private namespaces where ``source/``, the gradebook, ``tests/``,
``.git`` and the other students' folders are hidden, so that a submission cannot read solutions or
hidden tests, and in a private PID namespace, so that nothing it starts outlives it.

It imports nothing heavy before the kernel starts (not nbgrader: that costs seconds, twice per
submission, since the kernel re-runs itself inside the namespaces).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

MEMORY_ENV = "COURSEKIT_GRADER_MEMORY_MB"
DEFAULT_MEMORY_MB = 1400


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _watch_memory(limit_bytes: int, log_fd: int, interval: float = 0.25) -> None:
    """Kill the kernel's process tree once it passes ``limit_bytes``; say why on ``log_fd``.

    ``log_fd`` is a copy of the kernel's stderr taken before ipykernel starts: ipykernel then sends
    file descriptor 2 into the running cell, and a dying kernel's cell reaches no one, while the
    copy reaches nbgrader's log, where the instructor reads why the submission stopped.
    """
    import psutil

    me = os.getpid()
    while True:
        if _tree_rss(me) > limit_bytes:
            os.write(log_fd, f"coursekit grader: this notebook's kernel used more than "
                             f"{limit_bytes // 2**20} MB and was stopped\n".encode())
            for child in psutil.Process(me).children(recursive=True):
                child.kill()
            os._exit(137)
        time.sleep(interval)


COURSE_ENV = "COURSEKIT_GRADER_COURSE_ROOT"
_ISOLATED_ENV = "COURSEKIT_GRADER_ISOLATED"
# what a submission's kernel may see of the course directory: its own autograded folder, and the
# environment it runs in; source/, the gradebook, other submissions, tests/ and .git are hidden
_VISIBLE = {"autograded", "src", ".venv"}


def _hiding_commands(root: Path, cwd: Path) -> list[str]:
    """Shell commands that hide the course directory's secrets inside a private mount namespace."""
    import shlex

    hide: list[Path] = [p for p in root.iterdir() if p.name not in _VISIBLE]
    graded = root / "autograded"
    if graded.is_dir() and graded in cwd.parents:
        own = cwd.relative_to(graded).parts[0]
        hide += [p for p in graded.iterdir() if p.name != own]
    commands = []
    for path in hide:
        quoted = shlex.quote(str(path))
        if path.is_dir() and not path.is_symlink():
            commands.append(f"mount -t tmpfs -o ro,size=4k coursekit-hidden {quoted}")
        elif path.is_file():
            commands.append(f"mount --bind /dev/null {quoted}")
    return commands


def _isolate(root: Path) -> None:
    """Re-run this kernel inside user+mount namespaces that hide the course's secrets.

    The hiding mounts are made in one namespace and the kernel runs in a nested one, where they are
    locked: code in the kernel cannot unmount them. The kernel is also PID 1 of a PID namespace of its
    own: when it ends, every process it started ends with it (a daemon left behind to disturb the
    next submission's grading is killed), and it cannot see or signal the grader's processes.
    Where namespaces are not available (macOS, a locked-down container) the kernel runs unisolated
    and says so in the grader's log.
    """
    import shutil
    import subprocess

    unshare = shutil.which("unshare")
    private = ["--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    probe = [unshare, *private, "true"] if unshare else None
    if probe is None or subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        sys.__stderr__.write("coursekit grader: user namespaces unavailable; the kernel is not isolated "
                             "from the course directory\n")
        return
    commands = _hiding_commands(root, Path.cwd())
    script = " && ".join([*commands, 'exec unshare --user --map-root-user --mount "$@"'])
    env = {**os.environ, _ISOLATED_ENV: "1"}
    os.execvpe(unshare, [unshare, *private, "sh", "-c", script, "sh",  # noqa: S606
                         sys.executable, "-m", "coursekit.graderkernel", *sys.argv[1:]], env)


def _use_running_broker() -> None:
    """Point the kernel at the broker the grader runs: from inside its PID namespace that broker's
    process is invisible, so the kernel would take it for a stranger on the port."""
    from coursekit import kafka

    running = kafka.status() if not os.environ.get(kafka.BOOTSTRAP_ENV) else None
    if running is not None:
        os.environ[kafka.BOOTSTRAP_ENV] = running.bootstrap


def grader_kernel() -> None:
    """Start an IPython kernel, isolated from the course directory and capped in memory."""
    root = os.environ.get(COURSE_ENV)
    if root and os.environ.get(_ISOLATED_ENV) != "1" and sys.platform.startswith("linux"):
        _use_running_broker()
        _isolate(Path(root))
    limit_mb = int(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
    log_fd = os.dup(2)
    threading.Thread(target=_watch_memory, args=(limit_mb * 2**20, log_fd), daemon=True, name="memory-cap").start()
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


GRADER_KERNEL = "coursekit-grader"


def jupyter_data_dir() -> str:
    """The folder to put on ``JUPYTER_PATH`` so that Jupyter finds the grader kernel's spec."""
    from importlib import resources

    return str(resources.files("coursekit"))


if __name__ == "__main__":
    grader_kernel()
