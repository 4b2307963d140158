"""The kernel that autograding runs (``python -m coursekit.graderkernel -f CONN``, kernel spec ``coursekit-grader``).

This process is a small supervisor that stays **outside** the submission's reach. It starts the
real IPython kernel inside the grading sandbox (:mod:`coursekit.sandbox`: an allow-listed, read-only
file system, a private ``/tmp`` and ``HOME``, an allow-listed environment, private namespaces) and
enforces the limits from outside it, where no code of the submission can switch them off:

* **memory**: every process of the kernel gets ``RLIMIT_DATA`` = the cap (an allocation beyond it
  fails at once with ``MemoryError``, however fast it is), and this process watches the resident
  memory of the kernel's whole process tree and kills the tree when it passes the cap (several
  processes together). ``COURSEKIT_GRADER_MEMORY_MB`` sets the cap (default 1400);
* **file size**: ``RLIMIT_FSIZE``, so a submission cannot fill the disk through its working copy;
* **lifetime**: the kernel is the first process of its own PID namespace, so everything it starts
  ends with it; when this process ends or is killed, the sandbox dies with it.

nbclient interrupts a kernel (a cell past its timeout) by signalling this process's group: the
sandbox runs in a session of its own, and this process passes the interrupt on to the kernel alone.
It imports nothing heavy (not nbgrader: that costs seconds per submission).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MEMORY_ENV = "COURSEKIT_GRADER_MEMORY_MB"
DEFAULT_MEMORY_MB = 1400
FILE_SIZE_MB = 1024
COURSE_ENV = "COURSEKIT_GRADER_COURSE_ROOT"
GRADER_KERNEL = "coursekit-grader"
CONNECTION = "/tmp/coursekit-kernel.json"  # noqa: S108 - the sandbox's own /tmp
_WATCH_INTERVAL = 0.05


def _tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_rss(pid: int) -> int:
    import psutil

    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _kill_tree(pid: int) -> None:
    import psutil

    for proc in reversed(_tree(pid)):
        try:
            proc.kill()
        except psutil.Error:
            continue


def _limits(memory_bytes: int) -> None:
    """In the child, before it runs: the limits every process of the kernel inherits and cannot raise."""
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    size = FILE_SIZE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def _who(cwd: Path, root: str | None) -> str:
    """The student whose submission this kernel runs (``autograded/<student>/<lab>``), for the log."""
    if root:
        try:
            return cwd.resolve().relative_to(Path(root).resolve() / "autograded").parts[0]
        except (ValueError, IndexError):
            pass
    return cwd.name


def _use_running_broker(environ: dict[str, str]) -> None:
    """Point the kernel at the broker the grader runs: its state directory is not in the sandbox."""
    from coursekit import kafka

    running = kafka.status() if not environ.get(kafka.BOOTSTRAP_ENV) else None
    if running is not None:
        environ[kafka.BOOTSTRAP_ENV] = running.bootstrap


def _command(argv: list[str], connection: Path, keep: list[int]) -> tuple[list[str], dict[str, str]]:
    """The kernel's command and environment: in the sandbox, or (sandbox off) as the grader itself."""
    from coursekit import sandbox

    kernel = [sys.executable, "-m", "ipykernel_launcher"]
    environ = dict(os.environ)
    _use_running_broker(environ)
    if not sandbox.enabled():
        sys.stderr.write(f"coursekit grader: {sandbox.MODE_ENV}=off: this kernel is NOT isolated; it sees "
                         "everything the grader account sees\n")
        return [*kernel, "-f", str(connection), *argv], environ
    reason = sandbox.problem()
    if reason is not None:
        raise sandbox.SandboxUnavailable(reason, "see docs/instructor_guide.md, 'What a submission can reach'")
    fd = os.open(connection, os.O_RDONLY)
    keep.append(fd)
    root = environ.get(COURSE_ENV)
    command = sandbox.command([*kernel, "-f", CONNECTION, *argv], workdir=Path.cwd(),
                              env=sandbox.kernel_environment(environ), files={CONNECTION: fd},
                              hide=[Path(root)] if root else [])
    return command, {"PATH": environ.get("PATH", "/usr/bin:/bin")}


def _interrupt(child: subprocess.Popen[bytes]) -> None:
    """Pass an interrupt on to the IPython kernel (inside the sandbox: not to ``bwrap``, which would die)."""
    import psutil

    for proc in _tree(child.pid):  # breadth first: the kernel comes before anything it started
        try:
            if proc.cmdline()[1:3] == ["-m", "ipykernel_launcher"]:
                proc.send_signal(signal.SIGINT)
                return
        except psutil.Error:
            continue


def grader_kernel(argv: list[str]) -> int:
    """Run an IPython kernel for one submission, sandboxed and capped; return its exit status."""
    if "-f" not in argv or argv.index("-f") + 1 >= len(argv):
        sys.stderr.write("usage: python -m coursekit.graderkernel -f CONNECTION_FILE\n")
        return 2
    at = argv.index("-f")
    connection, rest = Path(argv[at + 1]), argv[:at] + argv[at + 2:]
    limit_mb = int(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
    who = _who(Path.cwd(), os.environ.get(COURSE_ENV))
    keep: list[int] = []
    try:
        command, env = _command(rest, connection, keep)
    except Exception as exc:  # noqa: BLE001 - the kernel cannot start: say why, in nbgrader's log
        sys.stderr.write(f"coursekit grader: the kernel for {who} cannot start: {exc}\n")
        return 1
    child = subprocess.Popen(command, env=env, pass_fds=keep, start_new_session=True,
                             preexec_fn=(lambda: _limits(limit_mb * 2**20)) if limit_mb > 0 else None)
    for fd in keep:
        os.close(fd)

    def stop(signum: int, _frame: object) -> None:
        _kill_tree(child.pid)
        sys.exit(128 + signum)

    signal.signal(signal.SIGINT, lambda *_: _interrupt(child))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    while child.poll() is None:
        if limit_mb > 0 and _tree_rss(child.pid) > limit_mb * 2**20:
            sys.stderr.write(f"coursekit grader: the kernel for {who} used more than {limit_mb} MB and was "
                             "stopped\n")
            _kill_tree(child.pid)
            child.wait()
            return 137
        time.sleep(_WATCH_INTERVAL)
    return child.returncode


def jupyter_data_dir() -> str:
    """The folder to put on ``JUPYTER_PATH`` so that Jupyter finds the grader kernel's spec."""
    from importlib import resources

    return str(resources.files("coursekit"))


if __name__ == "__main__":
    sys.exit(grader_kernel(sys.argv[1:]))
