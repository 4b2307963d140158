"""The JVM jars of the embedded engines, resolved by Maven from pinned poms in this package.

``coursekit fetch-jars`` (run by the setup command, and by ``postBuild`` on Binder) copies each
bundle's runtime dependencies into ``<jars>/<bundle>``; engines only read from there, so nothing is
downloaded at run time. The jars belong to the environment, not to a user: by default they live in
``<sys.prefix>/share/coursekit/jars`` (the course's ``.venv``, a Binder image, a JupyterHub's shared
environment), fetched once and used by every user of that environment. ``COURSEKIT_JARS`` names
another directory (an administrator's choice when the environment is read-only).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from coursekit.errors import JarsMissing

BUNDLES = ("kafka-broker", "spark-kafka", "spark-delta")
JARS_ENV = "COURSEKIT_JARS"
_STAMP = ".pom-sha256"


def _pom_text(bundle: str) -> str:
    if bundle not in BUNDLES:
        raise ValueError(f"unknown jar bundle {bundle!r}; choose one of {', '.join(BUNDLES)}")
    return resources.files("coursekit.jvm").joinpath(f"{bundle}.pom.xml").read_text()


def _digest(bundle: str) -> str:
    return hashlib.sha256(_pom_text(bundle).encode()).hexdigest()


def jar_root() -> Path:
    """Where the environment keeps its jars: ``$COURSEKIT_JARS``, else ``<sys.prefix>/share/coursekit/jars``."""
    configured = os.environ.get(JARS_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "share" / "coursekit" / "jars"


def jar_dir(bundle: str) -> Path:
    """Return the directory that holds (or will hold) ``bundle``'s jars."""
    return jar_root() / bundle


def is_fetched(bundle: str) -> bool:
    """True when ``bundle``'s jars are present and match the pinned pom."""
    want = _digest(bundle)
    stamp = jar_dir(bundle) / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == want


def fetch(bundle: str, *, quiet: bool = True) -> Path:
    """Resolve ``bundle`` with Maven and copy its jars into :func:`jar_dir`; a no-op when current."""
    target = jar_dir(bundle)
    if is_fetched(bundle):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsMissing(
            f"the {bundle} jars are not fetched and Maven (`mvn`) is not installed",
            "install Maven (Debian/Ubuntu: `sudo apt-get install maven`; conda: `conda install maven`), "
            "then run `coursekit fetch-jars`",
        )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise JarsMissing(
            f"the {bundle} jars cannot be written to {target.parent}: {exc.strerror}",
            f"run `coursekit fetch-jars` as the environment's owner (an administrator on a shared hub), "
            f"or set {JARS_ENV} to a directory you can write, and keep it set for every user",
        ) from exc
    pom = staging / "pom.xml"
    pom.write_text(_pom_text(bundle))
    cmd = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
    if quiet:
        cmd.insert(1, "-q")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise JarsMissing(
            f"Maven could not resolve the {bundle} jars:\n{tail}",
            "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then run "
            "`coursekit fetch-jars` again",
        )
    pom.unlink()
    (staging / _STAMP).write_text(_digest(bundle))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def require(bundle: str) -> list[Path]:
    """Return the jars of ``bundle``, or raise :class:`JarsMissing` saying how to fetch them."""
    if not is_fetched(bundle):
        raise JarsMissing(
            f"the {bundle} jars have not been fetched (or are out of date) in {jar_dir(bundle)}",
            "run `coursekit fetch-jars` (the setup command `./course lab` does it for you)",
        )
    return sorted(jar_dir(bundle).glob("*.jar"))
