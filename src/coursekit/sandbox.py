"""The sandbox a lab submission's kernel runs in while it is graded: bubblewrap (``bwrap``).

bubblewrap is the unprivileged sandbox Flatpak uses (https://github.com/containers/bubblewrap). One
``bwrap`` command gives the grader kernel (:mod:`coursekit.graderkernel`):

* a file system that is an **allow-list**, all of it read-only (``/dev`` and ``/proc/sys`` too): the
  system (``/usr``, ``/etc``), the Python environment the kernel runs in, the course package, Java and
  the JVM jars. Nothing else of
  the machine exists in it: not the course directory's solutions, hidden tests, gradebook or secret,
  not the other submissions (whenever they were created), not the grader's home or Jupyter runtime
  directory (where other kernels' connection files are);
* **writable**: the submission's own working copy, its kernel's socket folder, and a fresh ``/tmp``
  (which is also its ``HOME``) and ``/dev/shm``, size-capped tmpfs that disappear with the kernel, so
  nothing it writes reaches the next one;
* an **allow-listed environment** (``--clearenv``): no grader secret such as ``JUPYTERHUB_API_TOKEN``;
* private PID, IPC, UTS, cgroup and **network** namespaces (only its own loopback: the kernel talks to
  nbgrader over Unix sockets and reaches the grader's Kafka broker through a forwarder), no
  capabilities, and death with its parent. Graded by root, the kernel runs as ``nobody``; graded by
  another account, in a user namespace of its own.

``COURSEKIT_BWRAP`` names the ``bwrap`` to use; otherwise the copy ``coursekit fetch-sandbox`` installs
into the environment, else the one on ``PATH``. ``COURSEKIT_GRADER_SANDBOX=off`` grades without it
(trusted submissions only: the kernel then sees everything the grader account sees).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from coursekit.errors import CourseError

BWRAP_ENV = "COURSEKIT_BWRAP"
MODE_ENV = "COURSEKIT_GRADER_SANDBOX"
TMP_ENV = "COURSEKIT_GRADER_TMP_MB"
NETWORK_ENV = "COURSEKIT_GRADER_NETWORK"
DEFAULT_TMP_MB = 512
# Debian 12's package; other Debian/Ubuntu releases get their own release's version
DEBIAN_PACKAGE = "bubblewrap"
DEBIAN_VERSION = "0.8.0-2+deb12u1"
# what the kernel's environment keeps of the grader's: locale and time zone, Java, and the course's
# switches that carry no credentials; nothing else (SPARK_REMOTE and MLFLOW_TRACKING_URI may hold
# tokens and point at the instructor's own servers: name them in COURSEKIT_GRADER_PASS_ENV to pass them)
KERNEL_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "JAVA_HOME", "KAFKA_BOOTSTRAP_SERVERS", "SPARK_MASTER",
              "FEAST_REPO_PATH", "COURSEKIT_JARS", "COURSEKIT_NATIVE_LOGS", "MLFLOW_DISABLE_TELEMETRY",
              "SQLMESH__DISABLE_ANONYMIZED_ANALYTICS",
              "PYDEVD_DISABLE_FILE_VALIDATION", "COURSEKIT_LEARNER", "COURSEKIT_NAMESPACE")
PASS_ENV = "COURSEKIT_GRADER_PASS_ENV"  # noqa: S105 - a variable's name
SYSTEM_DIRS = ("/usr", "/etc")
USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
TMP = "/tmp"  # noqa: S108 - inside the sandbox: its own fresh tmpfs, not the machine's /tmp
HOME = f"{TMP}/home"


class SandboxUnavailable(CourseError):
    """Grading needs bubblewrap and it is missing or cannot create namespaces here."""


def installed_path() -> Path:
    """Where ``coursekit fetch-sandbox`` puts ``bwrap``: the environment, shared by its users."""
    return Path(sys.prefix) / "share" / "coursekit" / "bin" / "bwrap"


def bwrap_path() -> str | None:
    """The ``bwrap`` to use: ``$COURSEKIT_BWRAP``, else the environment's copy, else ``PATH``'s."""
    configured = os.environ.get(BWRAP_ENV, "").strip()
    if configured:
        return configured
    if installed_path().is_file():
        return str(installed_path())
    return shutil.which("bwrap")


def enabled() -> bool:
    """False when ``COURSEKIT_GRADER_SANDBOX=off``: the instructor chose to grade without isolation."""
    return os.environ.get(MODE_ENV, "").strip().lower() not in ("off", "0", "no", "false")


def problem() -> str | None:
    """Why the sandbox cannot run here (and what to do), or None when it can."""
    bwrap = bwrap_path()
    if bwrap is None or not os.access(bwrap, os.X_OK):
        where = f"{BWRAP_ENV}={bwrap}" if bwrap else "bubblewrap (`bwrap`) is not installed"
        return (f"{where}: grading isolates each submission with it. Run `coursekit fetch-sandbox` "
                f"(Debian/Ubuntu), or install your system's `bubblewrap` package, or set {MODE_ENV}=off "
                "to grade trusted submissions without isolation")
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--share-net", "--die-with-parent", "--ro-bind", "/", "/",
                               "true"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"{bwrap} could not be run ({exc}); reinstall it with `coursekit fetch-sandbox`"
    if done.returncode != 0:
        return (f"bubblewrap cannot create its namespaces here ({done.stderr.strip()[:300]}): allow unprivileged "
                "user namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 an AppArmor "
                f"profile for bwrap), or set {MODE_ENV}=off to grade trusted submissions without isolation")
    return None


def install(into: Path | None = None) -> Path:
    """Install ``bwrap`` from the Debian package into the environment, unprivileged; return its path.

    ``apt-get download`` fetches the package (pinned on Debian 12, the distribution's own version
    elsewhere) and ``dpkg-deb -x`` unpacks it: no root, nothing installed system-wide.
    """
    target = into or installed_path()
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise SandboxUnavailable("this system has no apt-get/dpkg-deb to fetch bubblewrap with",
                                 "install your distribution's `bubblewrap` package (it puts `bwrap` on PATH)")
    with tempfile.TemporaryDirectory() as tmp:
        for attempt, spec in enumerate((f"{DEBIAN_PACKAGE}={DEBIAN_VERSION}", DEBIAN_PACKAGE, DEBIAN_PACKAGE)):
            if attempt == 2 and os.geteuid() == 0:  # a fresh container often has no package lists yet
                subprocess.run([apt, "update", "-qq"], capture_output=True, check=False, timeout=300)
            done = subprocess.run([apt, "download", spec], cwd=tmp, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                break
        else:
            raise SandboxUnavailable(f"apt-get could not download bubblewrap: {done.stderr.strip()[-300:]}",
                                     "install the `bubblewrap` package, or check the package sources")
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run([dpkg, "-x", str(deb), str(Path(tmp) / "x")], check=True, capture_output=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "x" / "usr" / "bin" / "bwrap", target)
    target.chmod(0o755)
    return target


def kernel_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The kernel's environment: :data:`KERNEL_ENV` of ``environ`` and the variables ``$COURSEKIT_GRADER_PASS_ENV``
    names, and its own PATH, HOME and TMPDIR."""
    bindir = str(Path(sys.executable).parent)
    extra = tuple(n for n in environ.get(PASS_ENV, "").replace(",", " ").split() if n)
    env = {name: environ[name] for name in (*KERNEL_ENV, *extra) if environ.get(name)}
    env.update(PATH=os.pathsep.join([bindir, "/usr/local/bin", "/usr/bin", "/bin"]), HOME=HOME, TMPDIR=TMP,
               PYTHONNOUSERSITE="1", JPY_PARENT_PID="1",  # its parent in the sandbox is its PID 1
               # pyarrow's default allocator (jemalloc or mimalloc) reserves about 1 GiB of address space on
               # first use, which counts against the kernel's memory cap (RLIMIT_DATA) although it is never
               # touched; the system allocator holds what it uses
               ARROW_DEFAULT_MEMORY_POOL="system")
    return env


@functools.lru_cache(maxsize=1)
def _kernel_sys_path() -> tuple[str, ...]:
    """The import path the kernel will have: this interpreter's own, without ``PYTHONPATH`` or the
    current folder (``-I``), as in the sandbox, where the environment is cleared."""
    import json

    done = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
                          capture_output=True, text=True, timeout=60, check=True)
    return tuple(json.loads(done.stdout))


def _readable(hide: list[Path]) -> list[Path]:
    """What the kernel must read besides the system: its Python, the course package, Java, the jars.

    A folder that holds one of ``hide`` (the course directory, the submission) is left out: binding it
    would show everything beside them.
    """
    from coursekit import jars

    paths = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths |= {Path(p) for p in _kernel_sys_path() if p and Path(p).is_dir()}
    paths.add(Path(os.path.realpath(sys.executable)).parent.parent)
    paths.add(jars.jar_root())
    java = os.environ.get("JAVA_HOME") or shutil.which("java")
    if java:
        paths.add(Path(os.path.realpath(java)).parent.parent if not os.environ.get("JAVA_HOME") else Path(java))
    hidden = [Path(os.path.realpath(h)) for h in hide]
    resolved = {Path(os.path.realpath(p)) for p in paths if Path(p).exists()}
    resolved = {p for p in resolved if not any(h == p or p in h.parents for h in hidden)}
    inside_system = [p for p in resolved if any(p == Path(d) or Path(d) in p.parents for d in SYSTEM_DIRS)]
    # keep the outermost folders only: a bind inside another one would hide nothing and cost a mount
    outer = sorted(p for p in resolved if p not in inside_system and not any(q in p.parents for q in resolved))
    return [p for p in outer if p != Path("/")]


NOBODY = 65534
SHM_MB = 64
SHM = "/dev/shm"  # noqa: S108 - the sandbox's own, size-capped
# run first inside the sandbox when the grader is root: become `nobody`, then run the kernel
# (changing user clears the parent-death signal: set it again, so that the kernel dies with bwrap)
_BECOME_NOBODY = ("import ctypes, os, sys; os.setgroups([]); os.setresgid({0}, {0}, {0}); "
                  "os.setresuid({0}, {0}, {0}); ctypes.CDLL(None).prctl(1, 9); "
                  "os.getppid() == 0 and os._exit(1); os.execv(sys.argv[1], sys.argv[1:])")


def as_root() -> bool:
    """True when grading runs as root (containers, CI): the kernel then runs as ``nobody``."""
    return os.geteuid() == 0


def command(argv: list[str], *, workdir: Path, env: Mapping[str, str], files: Mapping[str, int],
            hide: list[Path], writable: list[Path] = (), private_network: bool = True) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` in the grading sandbox.

    ``workdir`` is the submission's working copy and, with ``writable`` (the kernel's socket folder),
    the only writable folders of the host; ``files`` maps paths inside the sandbox's ``/tmp`` to open
    file descriptors whose content they get (the kernel's connection file, copied in, so the grader's
    runtime directory stays out of sight); ``hide`` are folders that must not be visible through a bind
    of a folder holding them. With ``private_network`` the sandbox has only its own loopback.

    Run by root, bwrap makes no user namespace (root in one would still be the machine's root for
    files and sysctls): it keeps only the right to change user, and the first thing that runs inside
    drops to ``nobody``. Run by anyone else, the sandbox is an unprivileged user namespace in which no
    further one can be made.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(problem() or "bubblewrap is missing", "run `coursekit fetch-sandbox`")
    tmp_mb = int(os.environ.get(TMP_ENV, DEFAULT_TMP_MB))
    args = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
            "--new-session"]
    if private_network:
        args.append("--unshare-net")
    if as_root():
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        argv = [sys.executable, "-I", "-c", _BECOME_NOBODY.format(NOBODY), *argv]  # -I: nothing from the copy
    else:
        args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args.append("--clearenv")
    for name, value in env.items():
        args += ["--setenv", name, value]
    for folder in SYSTEM_DIRS:
        args += ["--ro-bind-try", folder, folder]
    for link in USR_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    # the private /tmp first: what is bound below may live under the machine's /tmp (a course cloned there)
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev",
             "--perms", "01777", "--size", str(SHM_MB * 2**20), "--tmpfs", SHM, "--remount-ro", "/dev",
             "--perms", "01777", "--size", str(tmp_mb * 2**20), "--tmpfs", TMP, "--perms", "0777", "--dir", HOME]
    readable, writable = _readable([workdir, *hide]), [workdir, *writable]
    made: set[Path] = {Path("/"), Path(TMP)}
    for path in [*readable, *writable]:  # the folders above a bind: bwrap would make them 0700 (root's)
        for folder in reversed(path.parents):
            if folder not in made:
                made.add(folder)
                args += ["--perms", "0755", "--dir", str(folder)]
    for path in readable:
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    args += ["--chdir", str(workdir)]
    for path, fd in files.items():
        args += ["--perms", "0644", "--file", str(fd), path]
    # the sandbox's root is a tmpfs of bwrap's that would take writes (uncapped, in memory): make it read-only
    return [*args, "--remount-ro", "/", "--", *argv]


OUTPUT_KEPT = 64 * 1024  # bytes of a command's output that run() keeps: its end, where the verdict is


def run(argv: list[str], *, workdir: Path, timeout: float, env: Mapping[str, str] | None = None,
        set_env: Mapping[str, str] | None = None, hide: list[Path] = (),
        sandboxed: bool | None = None) -> tuple[int | None, str]:
    """Run ``argv`` (a command of this Python environment) in ``workdir``, a folder of its own, and wait
    at most ``timeout`` seconds; return its exit status (None: killed at the time limit, with everything
    it started) and the last :data:`OUTPUT_KEPT` bytes of its output (stdout and stderr): how the grader
    runs what a submission wrote.

    Its processes get the grading kernel's limits (:mod:`coursekit.graderkernel`): ``RLIMIT_DATA`` at
    ``COURSEKIT_GRADER_MEMORY_MB``, ``RLIMIT_NPROC``, 1 GB per file, no core files, and death with this
    process. ``env``: the environment it starts from (default: this process's, without pytest's
    variables); ``set_env``: variables it gets in any case. ``sandboxed``: None uses the sandbox when it is
    :func:`enabled` and can run here (else a plain child process); in it, ``argv`` sees the system, the
    Python environment and ``workdir`` (writable), nothing of ``hide`` (the course directory), and of
    ``env`` only :func:`kernel_environment`'s part.
    """
    import threading

    from coursekit import graderkernel

    base = dict(env) if env is not None else {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    # pyarrow's default allocator would reserve 1 GiB of RLIMIT_DATA that it never touches
    extra = {"ARROW_DEFAULT_MEMORY_POOL": "system", **(set_env or {})}
    use_sandbox = (enabled() and problem() is None) if sandboxed is None else sandboxed
    if use_sandbox:
        if as_root():  # the command runs as nobody, and bwrap (root without CAP_DAC_*) must enter the folder
            for path in [workdir, *workdir.rglob("*")]:
                os.lchown(path, NOBODY, NOBODY)
                os.chmod(path, 0o711 if path.is_dir() else 0o600)
        argv = command(argv, workdir=workdir, env={**kernel_environment(base), **extra}, files={},
                       hide=[workdir, *hide])
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        process_env = {**base, **extra}
    memory = int(os.environ.get(graderkernel.MEMORY_ENV, graderkernel.DEFAULT_MEMORY_MB)) * 2**20
    processes = graderkernel.process_limit()
    child = subprocess.Popen(argv, cwd=workdir, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=lambda: graderkernel.limits(memory, processes))
    kept = bytearray()

    def keep_the_end() -> None:  # however much it writes, this process holds only the end of it
        assert child.stdout is not None
        for chunk in iter(lambda: os.read(child.stdout.fileno(), 65536), b""):  # what is there, not 64 KB
            kept.extend(chunk)
            del kept[:-OUTPUT_KEPT]

    reader = threading.Thread(target=keep_the_end, daemon=True)
    reader.start()
    code: int | None = None
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:  # what it started and left behind goes too (in the sandbox, its PID namespace does that)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    reader.join(timeout=10)
    if not reader.is_alive():  # else a process it left holds the pipe: the thread still reads it
        child.stdout.close()
    return code, bytes(kept).decode(errors="replace")
