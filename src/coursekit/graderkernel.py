"""The kernel that autograding runs (``python -m coursekit.graderkernel -f CONN``, kernel spec ``coursekit-grader``).

This process is a small supervisor that stays **outside** the submission's reach. It starts the
real IPython kernel inside the grading sandbox (:mod:`coursekit.sandbox`: an allow-listed, read-only
file system, a private ``/tmp`` and ``HOME``, an allow-listed environment, private namespaces) and
enforces the limits from outside it, where no code of the submission can switch them off:

* **memory**: every process of the kernel gets ``RLIMIT_DATA`` = the cap (an allocation beyond it
  fails at once with ``MemoryError``, however fast it is), and this process watches the resident
  memory of the kernel's whole process tree and kills the tree when it passes the cap (several
  processes together). ``COURSEKIT_GRADER_MEMORY_MB`` sets the cap (default 1400);
  The measure counts what resident sizes do not show: memory files (``memfd``) and the sandbox's
  tmpfs (``/tmp``, ``/dev/shm``);
* **processes and files**: ``RLIMIT_NPROC`` (no fork or thread bomb), ``RLIMIT_FSIZE`` 1 GB per file,
  no core dumps;
* **lifetime**: the kernel is the first process of its own PID namespace, so everything it starts
  ends with it; when this process ends or is killed, the sandbox dies with it; this process stops the
  kernel when nbgrader ends, or after ``COURSEKIT_GRADER_WALL_S`` (default 600) in all, so that a
  submission that ignores interrupts costs at most that.

nbclient interrupts a kernel (a cell past its timeout) by signalling this process's group: the
sandbox runs in a session of its own, and this process passes the interrupt on to the kernel alone.
It imports nothing heavy (not nbgrader: that costs seconds per submission).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

MEMORY_ENV = "COURSEKIT_GRADER_MEMORY_MB"
DEFAULT_MEMORY_MB = 1400
WALL_ENV = "COURSEKIT_GRADER_WALL_S"
DEFAULT_WALL_S = 600
FILE_SIZE_MB = 1024
PROCESSES = 512
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


def _memory(pid: int) -> int:
    """What the kernel's tree holds in memory: resident memory, memory files (``memfd``) it keeps open,
    what it wrote to any tmpfs mounted in its mount namespaces (``/tmp``, ``/dev/shm``, and one a nested
    user namespace mounted) and its System V shared memory, none of which a process's resident size shows."""
    import psutil

    total, seen_files, seen_ns = 0, set(), {os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/ipc")}
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                link = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                if link.startswith("/memfd:"):
                    info = os.stat(f"/proc/{proc.pid}/fd/{fd}")
                    if (info.st_dev, info.st_ino) not in seen_files:
                        seen_files.add((info.st_dev, info.st_ino))
                        total += info.st_blocks * 512
            mounts, ipc = os.readlink(f"/proc/{proc.pid}/ns/mnt"), os.readlink(f"/proc/{proc.pid}/ns/ipc")
            if mounts not in seen_ns:
                seen_ns.add(mounts)
                total += _tmpfs_used(proc.pid)
            if ipc not in seen_ns:
                seen_ns.add(ipc)
                total += _sysv_shm(proc.pid)
        except (psutil.Error, OSError):
            continue
    return total


def _tmpfs_used(pid: int) -> int:
    """Bytes written to the tmpfs mounts that process ``pid`` sees."""
    used = 0
    with open(f"/proc/{pid}/mountinfo") as info:
        for line in info:
            fields = line.split()
            if fields[fields.index("-") + 1] == "tmpfs":
                try:
                    fs = os.statvfs(f"/proc/{pid}/root{fields[4]}")
                    used += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
                except OSError:
                    continue
    return used


def _sysv_shm(pid: int) -> int:
    """Resident bytes of the System V shared memory segments of process ``pid``'s IPC namespace."""
    with open(f"/proc/{pid}/sysvipc/shm") as table:
        header, *rows = table.read().splitlines()
    column = header.split().index("rss") if "rss" in header.split() else None
    return sum(int(row.split()[column]) for row in rows if column is not None and len(row.split()) > column)


def _kill_tree(pid: int) -> None:
    import psutil

    procs = _tree(pid)
    for proc in procs:  # the sandbox's outer process first: everything in it dies with it
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=5)  # gone before nbgrader cleans the working copy


_LIBC = ctypes.CDLL(None)  # loaded here, not in the child: a forked child of a threaded process must not load


def limits(memory_bytes: int, processes: int) -> None:
    """In the child, before it runs (``preexec_fn``): limits every process it starts inherits and cannot raise.
    Only system calls: no import, no library loaded (the parent may have threads)."""
    _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: bwrap dies with this supervisor, even killed
    size = FILE_SIZE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes <= 0:  # COURSEKIT_GRADER_MEMORY_MB=0: no memory or process limit
        return
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def process_limit() -> int:
    """RLIMIT_NPROC counts all processes of a user: the account's own now, plus :data:`PROCESSES`
    (root's kernel becomes nobody, whose count starts near zero)."""
    import psutil

    if os.geteuid() == 0:
        return PROCESSES
    mine = sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == os.getuid())
    return mine + PROCESSES


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
    from coursekit import kafka, naming

    running = kafka.status() if not environ.get(kafka.BOOTSTRAP_ENV) else None
    if running is not None:
        environ[kafka.BOOTSTRAP_ENV] = running.bootstrap
        environ.setdefault(naming.MODE_ENV, "never")  # the grader's own broker: names as the notebook gives them


def _loopback_port(bootstrap: str) -> int | None:
    """The port of a broker on this machine's loopback (``127.0.0.1:p``, ``localhost:p``), else None."""
    host, _, port = bootstrap.strip().rpartition(":")
    return int(port) if host in ("127.0.0.1", "localhost") and port.isdigit() and "," not in bootstrap else None


# ---- forwarding the broker into the sandbox's own network --------------------------------------------

def _pump(source, sink) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(2)
            except OSError:
                pass


def _serve(listener, connect) -> None:
    """Accept connections on ``listener`` and join each to a new ``connect()`` socket, both ways."""
    import threading

    slots = threading.BoundedSemaphore(32)  # a Kafka client opens a few; more is someone else's game

    def join(near, far) -> None:
        try:
            other = threading.Thread(target=_pump, args=(far, near), daemon=True)
            other.start()
            _pump(near, far)
            other.join()
        finally:
            near.close()
            far.close()
            slots.release()

    while True:
        try:
            near, _ = listener.accept()
        except OSError:
            continue
        if not slots.acquire(blocking=False):
            near.close()
            continue
        try:
            far = connect()
        except OSError:
            near.close()
            slots.release()
            continue
        threading.Thread(target=join, args=(near, far), daemon=True).start()


def _forward_outside(path: Path, port: int) -> None:
    """Outside the sandbox: a Unix socket at ``path`` whose connections reach the broker's port."""
    import socket
    import threading

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, lambda: socket.create_connection(("127.0.0.1", port))),
                     daemon=True).start()


def _forward_inside(path: str, port: int, argv: list[str]) -> None:
    """Inside the sandbox: listen on its loopback at the broker's port, forward to the Unix socket at
    ``path``, and run ``argv`` (the kernel) beside it. The broker advertises ``127.0.0.1:port``, so
    every connection a Kafka client makes lands here."""
    import socket

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    if os.fork() == 0:
        def unix() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            return sock

        _serve(listener, unix)
        os._exit(0)
    listener.close()
    os.execv(argv[0], argv)  # noqa: S606 - the kernel's own command


# ---- the supervisor ---------------------------------------------------------------------------------

def _command(argv: list[str], connection: Path, keep: list[int]) -> tuple[list[str], dict[str, str], list[Path]]:
    """The kernel's command, its environment, and the host folders it must be able to write."""
    import json

    from coursekit import kafka, sandbox

    kernel = [sys.executable, "-m", "ipykernel_launcher"]
    environ = dict(os.environ)
    # the memory cap is RLIMIT_DATA: pyarrow's default allocator (mimalloc) would reserve 1 GiB of it on
    # first use without touching it; the system allocator takes what it uses (sandbox.kernel_environment too)
    environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    _use_running_broker(environ)
    root = environ.get(COURSE_ENV)
    if not _is_submission(root):  # the instructor's own notebook (`nbgrader validate` of source/): nothing to isolate
        return [*kernel, "-f", str(connection), *argv], environ, []
    if not sandbox.enabled():
        sys.stderr.write(f"coursekit grader: {sandbox.MODE_ENV}=off: this kernel is NOT isolated; it sees "
                         "everything the grader account sees\n")
        return [*kernel, "-f", str(connection), *argv], environ, []
    reason = sandbox.problem()
    if reason is not None:
        raise sandbox.SandboxUnavailable(reason, "see docs/instructor_guide.md, 'What grading protects against'")
    info = json.loads(connection.read_text())
    sockets = Path(info["ip"]).parent if info.get("transport") == "ipc" else None
    port = _loopback_port(environ.get(kafka.BOOTSTRAP_ENV, ""))
    inner = [*kernel, "-f", CONNECTION, *argv]
    private = sockets is not None and (port is not None or not environ.get(kafka.BOOTSTRAP_ENV))
    if private and port is not None:
        _forward_outside(sockets / "kafka.sock", port)
        inner = [sys.executable, "-I", "-m", "coursekit.graderkernel", "--forward", str(sockets / "kafka.sock"),
                 str(port), "--", *inner]
    elif not private:
        if environ.get(sandbox.NETWORK_ENV, "").strip().lower() != "shared":
            raise sandbox.SandboxUnavailable(
                "the kernel would need the machine's network (a Kafka cluster elsewhere, or a kernel manager "
                "without Unix sockets), where it reaches every local service",
                f"grade against the embedded broker (`coursekit start kafka`), or set {sandbox.NETWORK_ENV}=shared")
        sys.stderr.write("coursekit grader: the kernel shares the machine's network: it can reach other local "
                         "services\n")
    writable = [sockets] if sockets is not None else []
    if sandbox.as_root():  # only a submission's own folder under autograded/ (checked above)
        for folder in [Path.cwd(), *writable]:
            for path in [folder, *folder.rglob("*")]:
                os.lchown(path, sandbox.NOBODY, sandbox.NOBODY)
    fd = os.open(connection, os.O_RDONLY)
    keep.append(fd)
    command = sandbox.command(inner, workdir=Path.cwd(), env=sandbox.kernel_environment(environ),
                              files={CONNECTION: fd}, hide=[Path(str(root))], writable=writable,
                              private_network=private)
    return command, {"PATH": environ.get("PATH", "/usr/bin:/bin")}, writable


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


def _is_submission(root: str | None) -> bool:
    """This kernel runs a submission (its folder is under ``<course>/autograded/``), not the instructor's own."""
    return bool(root) and Path(root).resolve() / "autograded" in Path.cwd().resolve().parents


def grader_kernel(argv: list[str]) -> int:
    """Run an IPython kernel for one submission, sandboxed and capped; return its exit status."""
    if argv[:1] == ["--forward"]:
        _forward_inside(argv[1], int(argv[2]), argv[argv.index("--") + 1:])
    if "-f" not in argv or argv.index("-f") + 1 >= len(argv):
        sys.stderr.write("usage: python -m coursekit.graderkernel -f CONNECTION_FILE\n")
        return 2
    signal.signal(signal.SIGINT, lambda *_: None)  # until the kernel runs: nbclient's interrupt is for the kernel
    at = argv.index("-f")
    connection, rest = Path(argv[at + 1]), argv[:at] + argv[at + 2:]
    limit_mb = int(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
    wall_s = float(os.environ.get(WALL_ENV, DEFAULT_WALL_S))
    who = _who(Path.cwd(), os.environ.get(COURSE_ENV))
    parent, keep, processes = os.getppid(), [], process_limit()
    try:
        command, env, _ = _command(rest, connection, keep)
    except Exception as exc:  # noqa: BLE001 - the kernel cannot start: say why, in nbgrader's log
        sys.stderr.write(f"coursekit grader: the kernel for {who} cannot start: {exc}\n")
        return 1
    # a submission's processes get the memory cap as RLIMIT_DATA too; the instructor's own notebook (the source,
    # whose hidden tests run in its kernel) only the watch below: the policy engine cannot load under RLIMIT_DATA
    capped = limit_mb * 2**20 if _is_submission(os.environ.get(COURSE_ENV)) else 0
    child = subprocess.Popen(command, env=env, pass_fds=keep, start_new_session=True,
                             preexec_fn=lambda: limits(capped, processes))
    for fd in keep:
        os.close(fd)

    def stop(signum: int, _frame: object) -> None:
        _kill_tree(child.pid)
        sys.exit(128 + signum)

    signal.signal(signal.SIGINT, lambda *_: _interrupt(child))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    started = time.monotonic()
    while child.poll() is None:
        reason = None
        if limit_mb > 0 and _memory(child.pid) > limit_mb * 2**20:
            reason = f"used more than {limit_mb} MB"
        elif wall_s > 0 and time.monotonic() - started > wall_s:
            reason = f"ran longer than {wall_s:.0f} s ({WALL_ENV})"
        elif os.getppid() != parent:
            reason = "lost its grader (nbgrader ended)"
        if reason:
            sys.stderr.write(f"coursekit grader: the kernel for {who} {reason} and was stopped\n")
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
