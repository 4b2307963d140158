"""The commands the README promises, run as a learner, an author or an instructor would run them."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from conftest import FIXTURE_COURSE, ROOT, free_port_pair
from coursekit import jars, labs, notebooks


def coursekit(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coursekit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**labs.venv_env(), **(env or {})})


def test_clean_check_reports_then_clean_fixes(tmp_path: Path) -> None:
    dirty = new_notebook(cells=[new_code_cell("print(1)", execution_count=1,
                                              outputs=[new_output("stream", name="stdout", text="1\n")])])
    path = tmp_path / "lesson.ipynb"
    nbformat.write(dirty, path)
    check = coursekit("clean", "--check", str(tmp_path))
    assert check.returncode == 1 and f"needs cleaning: {path}" in check.stdout
    assert not notebooks.is_clean(notebooks.read(path)), "--check changes nothing"
    assert coursekit("clean", str(path)).returncode == 0
    assert notebooks.is_clean(notebooks.read(path))
    assert coursekit("clean", "--check", str(tmp_path)).returncode == 0


@pytest.mark.notebooks
def test_release_regenerates_a_stale_release(tmp_path: Path) -> None:
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, ["lab0_fixture"], tmp_path / "course")
    release = course / "release" / "lab0_fixture"
    shutil.copytree(FIXTURE_COURSE / "release" / "lab0_fixture", release)
    stale = release / "lab0_fixture.ipynb"
    stale.write_text(stale.read_text().replace("Part A", "Part A (edited by hand)"))
    done = coursekit("release", "--course", str(course))
    assert done.returncode == 0 and done.stdout.strip() == "regenerated: lab0_fixture", done.stdout + done.stderr
    assert not labs.diff(release, FIXTURE_COURSE / "release" / "lab0_fixture"), "the hand edit is gone"
    assert coursekit("release", "--course", str(course)).stdout.strip() == "release/ is up to date"


@pytest.mark.notebooks
def test_bench_prints_time_and_memory_against_the_budgets(tmp_path: Path) -> None:
    path = tmp_path / "tiny.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = sum(range(10))\nassert x == 45")]), path)
    broken = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("raise SystemError('a broken lesson')")]), broken)
    done = coursekit("bench", "--warm", str(path), str(broken))
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "tiny.ipynb" in rows and rows["tiny.ipynb"].rstrip().endswith("| yes |"), done.stdout
    assert "FAILED TO RUN" in rows["broken.ipynb"]
    assert done.returncode == 1, "a notebook that fails makes the benchmark fail"


@pytest.mark.notebooks
@pytest.mark.engines
def test_grade_bench_grades_each_kind_right(tmp_path: Path) -> None:
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, ["lab0_fixture"], tmp_path / "course")
    done = coursekit("grade-bench", "--lab", "lab0_fixture", "-n", "4", "--workers", "2", cwd=course, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "submissions: 4" in done.stdout and "scores_right: True" in done.stdout
    assert "'reference': [2.0]" in done.stdout and "'untouched': [0.0]" in done.stdout


def _fake_maven(folder: Path, *, fails: bool = False) -> Path:
    """An `mvn` that 'resolves' one jar per bundle into -DoutputDirectory (or fails like a broken proxy)."""
    folder.mkdir(parents=True, exist_ok=True)
    mvn = folder / "mvn"
    body = ('echo "[ERROR] Could not transfer artifact: connect timed out"; exit 1' if fails else
            'for a in "$@"; do case "$a" in -DoutputDirectory=*) touch "${a#-DoutputDirectory=}/fake-1.0.jar";; '
            'esac; done')
    mvn.write_text(f"#!/bin/sh\n{body}\n")
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    return folder


def test_jars_live_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(jars.JARS_ENV, raising=False)
    assert jars.jar_root() == Path(sys.prefix) / "share" / "coursekit" / "jars"
    from coursekit.config import state_dir

    assert not jars.jar_root().is_relative_to(state_dir()), "not in a user's state directory"


def test_fetch_jars_resolves_each_bundle_once(tmp_path: Path) -> None:
    env = {jars.JARS_ENV: str(tmp_path / "jars"), "PATH": f"{_fake_maven(tmp_path / 'bin')}:{os.environ['PATH']}"}
    done = coursekit("fetch-jars", env=env)
    assert done.returncode == 0, done.stderr
    for bundle in jars.BUNDLES:
        assert f"{bundle}: {tmp_path / 'jars' / bundle}" in done.stdout
        assert (tmp_path / "jars" / bundle / "fake-1.0.jar").is_file()
    offline = {**env, "PATH": str(tmp_path / "no-maven-here")}
    assert coursekit("fetch-jars", env=offline).returncode == 0, "fetched jars need no Maven"


def test_fetch_jars_says_what_maven_said(tmp_path: Path) -> None:
    env = {jars.JARS_ENV: str(tmp_path / "jars"),
           "PATH": f"{_fake_maven(tmp_path / 'bin', fails=True)}:{os.environ['PATH']}"}
    done = coursekit("fetch-jars", env=env)
    assert done.returncode == 2
    assert "connect timed out" in done.stderr and "Maven Central is reachable" in done.stderr
    assert not (tmp_path / "jars" / "kafka-broker").exists(), "nothing half-fetched is left to look complete"


def test_fetch_jars_into_a_read_only_environment(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/coursekit-jars")  # not writable even by root
    else:
        target = tmp_path / "ro" / "jars"
        target.parent.mkdir()
        target.parent.chmod(0o500)
    done = coursekit("fetch-jars", env={jars.JARS_ENV: str(target),
                                        "PATH": f"{_fake_maven(tmp_path / 'bin')}:{os.environ['PATH']}"})
    assert done.returncode == 2 and "cannot be written" in done.stderr and jars.JARS_ENV in done.stderr


def _stderr_of_native_code(tmp_path: Path, **env: str) -> tuple[str, Path]:
    nb = new_notebook(cells=[
        new_code_cell("from coursekit.config import quiet_native_output\nlog = quiet_native_output()"),
        # as C code writes to fd 2; the kernel forwards such output a moment later, to the cell running then
        new_code_cell("import os, time\nos.write(2, b'librdkafka says hello\\n')\ntime.sleep(1.5)"),
        new_code_cell("time.sleep(2)"),  # in case the kernel is slow to forward it, under load
    ])
    ran = notebooks.execute(nb, tmp_path, env=env)
    shown = "".join(o.get("text", "") for c in ran.cells for o in c.get("outputs", []))
    return shown, Path(os.environ["COURSEKIT_HOME"]) / "logs" / "native.log"


@pytest.mark.notebooks
def test_native_logs_go_to_a_file_unless_asked_for(tmp_path: Path) -> None:
    shown, log = _stderr_of_native_code(tmp_path)
    assert "librdkafka says hello" not in shown, "native stderr must not land in a cell"
    assert "librdkafka says hello" in log.read_text()
    shown, _ = _stderr_of_native_code(tmp_path, COURSEKIT_NATIVE_LOGS="notebook")
    assert "librdkafka says hello" in shown, "COURSEKIT_NATIVE_LOGS=notebook shows them again"


@pytest.mark.notebooks
def test_course_lab_serves_jupyterlab_even_as_root(tmp_path: Path) -> None:
    """`./course lab` (with the set-up already done) serves JupyterLab; as root it must not refuse."""
    port = free_port_pair()
    env = {**labs.venv_env(), "COURSEKIT_VENV": str(Path(sys.executable).parent.parent), "HOME": str(tmp_path),
           "COURSEKIT_SKIP_SETUP": "1"}
    log = tmp_path / "lab.log"
    with log.open("wb") as sink:
        lab = subprocess.Popen([str(ROOT / "course"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                                "--ServerApp.token=t0ken", "--ServerApp.port_retries=0"], cwd=ROOT, env=env,
                               stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert lab.poll() is None, f"./course lab exited:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=t0ken", timeout=5) as page:
                    assert page.status == 200 and "JupyterLab" in page.read().decode()
                    break
            except OSError:
                assert time.monotonic() < deadline, f"JupyterLab did not answer:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_fetch_sandbox_unpacks_bubblewrap_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coursekit import sandbox

    bin_dir = tmp_path / "bin"
    _script(bin_dir / "apt-get", 'echo "$@" >> "$LOG"; [ "$1" = download ] && : > bubblewrap_0.8.0_amd64.deb')
    _script(bin_dir / "dpkg-deb", 'mkdir -p "$3/usr/bin" && printf "#!/bin/sh\\ntrue\\n" > "$3/usr/bin/bwrap"')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LOG", str(tmp_path / "apt.log"))
    installed = sandbox.install(tmp_path / "env" / "bwrap")
    assert os.access(installed, os.X_OK)
    assert (tmp_path / "apt.log").read_text().splitlines()[0] == f"download bubblewrap={sandbox.DEBIAN_VERSION}"
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        sandbox.install(tmp_path / "env2" / "bwrap")


def test_doctor_says_when_grading_cannot_isolate_submissions(tmp_path: Path) -> None:
    from coursekit import sandbox

    refused = _script(tmp_path / "bwrap", 'echo "bwrap: No permissions to create new namespace" >&2; exit 1')
    done = coursekit("doctor", env={sandbox.BWRAP_ENV: str(refused)})
    line = next(row for row in done.stdout.splitlines() if row.startswith("grading sandbox"))
    assert "FAIL" in line and "No permissions" in line and "user namespaces" in line and done.returncode == 1
    off = coursekit("doctor", env={sandbox.BWRAP_ENV: str(refused), sandbox.MODE_ENV: "off"})
    assert "WITHOUT isolation" in next(r for r in off.stdout.splitlines() if r.startswith("grading sandbox"))
    missing = coursekit("doctor", env={sandbox.BWRAP_ENV: str(tmp_path / "absent")})
    assert "coursekit fetch-sandbox" in missing.stdout
