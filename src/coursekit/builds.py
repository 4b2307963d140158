"""The engines that are neither Python nor JVM, installed at set-up from manifests pinned in this package.

=============  ==========================================================  ===============================
engine         pinned in ``coursekit/native/``                             installed by
=============  ==========================================================  ===============================
``azurite``    ``azurite/package.json`` + ``package-lock.json`` (npm)      ``npm ci`` (Node.js 20 or newer)
``kubernetes`` ``go/{etcd,kubernetes,kwok}/go.mod`` + ``go.sum`` (Go)      ``go build`` (Go 1.26 or newer)
=============  ==========================================================  ===============================

``coursekit fetch-native`` (run by the set-up command and by ``postBuild`` on Binder) installs each engine
into ``<native>/<engine>``; engines only read from there, so nothing is downloaded at run time. Like the
jars (:mod:`coursekit.jars`), they belong to the environment, not to a user: by default they live in
``<sys.prefix>/share/coursekit/native``; ``COURSEKIT_NATIVE`` names another directory. An engine is
reinstalled only when its manifest changes (a stamp holds the manifest's digest).

The Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and kwok, which
simulates its nodes, are compiled from their Go modules: measured here, 17 CPU-minutes (14 minutes of wall time
on a busy 2-core machine) when Go's caches are empty, 90 s when its build cache has them (a second clone, a new
environment); about 400 MB of stripped binaries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from coursekit.errors import CourseError

NATIVE_ENV = "COURSEKIT_NATIVE"
_STAMP = ".manifest-sha256"


class NativeMissing(CourseError):
    """A native engine (Azurite, the Kubernetes control plane) is not installed."""


@dataclass(frozen=True)
class Engine:
    """One native engine: how it is built, from which manifests, and the programs it provides."""

    name: str
    tool: str  #: the program that installs it: ``npm`` or ``go``
    manifests: tuple[str, ...]  #: files under ``coursekit/native/``, hashed into the stamp
    programs: tuple[str, ...]  #: what :func:`program` finds after installing
    hint: str  #: how to get ``tool`` when it is missing
    note: str  #: what installing it takes, said before it starts


ENGINES: dict[str, Engine] = {
    "azurite": Engine(
        "azurite", "npm", ("azurite/package.json", "azurite/package-lock.json"),
        ("node_modules/.bin/azurite-blob",),
        "install Node.js 20 or newer with npm (Debian/Ubuntu: `sudo apt-get install nodejs npm`)",
        "npm ci, about 360 MB, under a minute"),
    "kubernetes": Engine(
        "kubernetes", "go",
        (*(f"go/{m}/{f}" for m in ("etcd", "kubernetes", "kwok") for f in ("go.mod", "go.sum")), "go/etcd/main.go"),
        ("bin/etcd", "bin/kube-apiserver", "bin/kube-controller-manager", "bin/kube-scheduler", "bin/kwok"),
        "install Go 1.26 or newer (https://go.dev/doc/install; Debian's golang package is older)",
        "compiled with Go: about 17 CPU-minutes on a machine that never built it (14 minutes on a busy 2-core "
        "machine), 1-2 minutes with Go's build cache; once per environment"),
}

# what `go build` compiles in each wrapper module (the etcd module's own main.go is its `.`)
_GO_PACKAGES = {
    "etcd": (".",),
    "kwok": ("sigs.k8s.io/kwok/cmd/kwok",),
    "kubernetes": ("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
                   "k8s.io/kubernetes/cmd/kube-scheduler"),
}


def _version_flags(module: str) -> list[str]:
    """``-X`` link flags that stamp the release into what the binaries report (``/version``, ``--version``):
    built with plain ``go build``, Kubernetes' components would say v0.0.0-master (its own build scripts set
    these); etcd and kwok carry their version as constants."""
    if module != "kubernetes":
        return []
    # go.mod requires it in a block (marked indirect: only the `tool` lines use it)
    text = _manifest("go/kubernetes/go.mod").decode()
    found = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v(\d+)\.(\d+)\.\d+)\b", text, re.MULTILINE)
    if found is None:
        raise ValueError("go/kubernetes/go.mod does not require k8s.io/kubernetes at an exact version")
    version, major, minor = found.groups()
    stamp = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return [f"-X k8s.io/component-base/version.{key}={value}" for key, value in stamp.items()]


def _engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"unknown native engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]


def _manifest(path: str) -> bytes:
    return resources.files("coursekit.native").joinpath(path).read_bytes()


def _digest(name: str) -> str:
    sha = hashlib.sha256()
    for path in _engine(name).manifests:
        sha.update(path.encode() + b"\0" + _manifest(path) + b"\0")
    if _engine(name).tool == "go":  # how it is built is part of what is installed
        for module, packages in _GO_PACKAGES.items():
            sha.update(" ".join([module, *packages, *_version_flags(module)]).encode() + b"\0")
    return sha.hexdigest()


def root() -> Path:
    """Where the environment keeps its native engines: ``$COURSEKIT_NATIVE``, else ``<sys.prefix>/share/...``."""
    configured = os.environ.get(NATIVE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "share" / "coursekit" / "native"


def engine_dir(name: str) -> Path:
    """The directory that holds (or will hold) engine ``name``."""
    _engine(name)
    return root() / name


def is_installed(name: str) -> bool:
    """True when ``name`` is installed from the manifests pinned now."""
    stamp = engine_dir(name) / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _digest(name)


def program(name: str, program_name: str) -> Path:
    """The path of ``program_name`` (e.g. ``kube-apiserver``) of engine ``name``, or :class:`NativeMissing`."""
    engine = _engine(name)
    matches = [p for p in engine.programs if Path(p).name == program_name]
    if not matches:
        raise ValueError(f"{name} has no program {program_name!r}; it has {', '.join(engine.programs)}")
    if not is_installed(name):
        raise NativeMissing(
            f"{name} is not installed (or is out of date) in {engine_dir(name)}",
            f"run `coursekit fetch-native {name}` (the set-up command `./course setup` does it for you)")
    return engine_dir(name) / matches[0]


def _run(cmd: list[str], cwd: Path, name: str) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise NativeMissing(
            f"`{' '.join(cmd[:3])} ...` failed while installing {name}:\n{tail}",
            f"check that the {'npm registry' if cmd[0].endswith('npm') else 'Go module proxy'} is reachable, "
            f"then run `coursekit fetch-native {name}` again")


def install(name: str) -> Path:
    """Install engine ``name`` into :func:`engine_dir`; a no-op when it is current. Returns the directory."""
    engine = _engine(name)
    target = engine_dir(name)
    if is_installed(name):
        return target
    tool = shutil.which(engine.tool)
    if tool is None:
        raise NativeMissing(f"{name} is not installed and `{engine.tool}` is not on PATH", engine.hint)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise NativeMissing(
            f"{name} cannot be written to {target.parent}: {exc.strerror}",
            f"run `coursekit fetch-native` as the environment's owner, or set {NATIVE_ENV} to a directory you "
            "can write, and keep it set for every user") from exc
    for path in engine.manifests:  # the manifests themselves: `go build` and `npm ci` run where they are
        dest = staging / "src" / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(_manifest(path))
    if engine.tool == "npm":
        src = staging / "src" / "azurite"
        _run([tool, "ci", "--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], src,
             name)
        (src / "node_modules").rename(staging / "node_modules")
    else:
        (staging / "bin").mkdir()
        for module, packages in _GO_PACKAGES.items():
            # -trimpath and stripped symbols: reproducible, and half the size; the default -mod=readonly fails
            # rather than change a pinned go.mod or go.sum
            ldflags = " ".join(["-s", "-w", *_version_flags(module)])
            _run([tool, "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(staging / "bin") + "/", *packages],
                 staging / "src" / "go" / module, name)
    (staging / _STAMP).write_text(_digest(name))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
