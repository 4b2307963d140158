"""The grading sandbox itself (coursekit.sandbox), one process at a time: what a sandboxed program sees.

The hostile submissions (test_hostile_submissions.py) prove the same through nbgrader; these show each
property directly, in a fraction of a second, including for a course cloned under the machine's /tmp.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import ROOT
from coursekit import sandbox


def _run(code: str, workdir: Path, *, hide: list[Path] | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    command = sandbox.command([sys.executable, "-c", code], workdir=workdir,
                              env=sandbox.kernel_environment({**os.environ, **(env or {})}), files={},
                              hide=hide or [])
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    if sandbox.problem():
        pytest.fail(f"the grading sandbox cannot run on this machine: {sandbox.problem()}")
    work = tmp_path / "course" / "autograded" / "ada" / "lab"
    work.mkdir(parents=True)
    if sandbox.as_root():  # as the grader kernel's supervisor does: the kernel runs as nobody
        os.chown(work, sandbox.NOBODY, sandbox.NOBODY)
    (tmp_path / "course" / "autograded" / "bob").mkdir()
    (tmp_path / "course" / "gradebook.db").write_text("grades")
    return work


def test_the_course_package_runs_and_only_the_working_copy_is_writable(workdir: Path) -> None:
    host_file = Path("/tmp") / f"coursekit-host-{uuid.uuid4().hex}"
    host_file.write_text("the machine's")
    try:
        code = ("import os, coursekit, pathlib\n"
                "pathlib.Path('answer.txt').write_text('mine')\n"
                "for p in [coursekit.__file__ + '.x', '/usr/x', '/x', os.environ['HOME'] + '/../../x']:\n"
                "    try:\n        open(p, 'w').close(); print('wrote', p)\n"
                "    except OSError as e:\n        print('refused', e.errno)\n"
                "open('/tmp/scratch', 'w').write('private')\n"
                f"print('host file visible:', os.path.exists({str(host_file)!r}))")
        done = _run(code, workdir)
    finally:
        host_file.unlink()
    assert done.returncode == 0, done.stderr
    assert "wrote" not in done.stdout and done.stdout.count("refused 30") == 4, done.stdout  # EROFS
    assert (workdir / "answer.txt").read_text() == "mine", "the working copy is the one writable place"
    assert "host file visible: False" in done.stdout, "/tmp is the sandbox's own"


def test_nothing_beside_the_working_copy_exists(workdir: Path) -> None:
    course = workdir.parents[2]
    paths = [course / "gradebook.db", course / "autograded" / "bob", ROOT / "tests", Path.home() / ".bash_history"]
    code = f"import os\nprint(*[os.path.exists(p) for p in {[str(p) for p in paths]!r}])"
    done = _run(code, workdir, hide=[course])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"] * 4


def test_the_environment_is_an_allow_list(workdir: Path) -> None:
    done = _run("import os; print(sorted(os.environ))", workdir,
                env={"JUPYTERHUB_API_TOKEN": "secret", "AWS_SECRET_ACCESS_KEY": "k", "KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    assert done.returncode == 0, done.stderr
    names = eval(done.stdout)
    assert "JUPYTERHUB_API_TOKEN" not in names and "AWS_SECRET_ACCESS_KEY" not in names
    assert "KAFKA_BOOTSTRAP_SERVERS" in names, "the course's engine switches pass"


def test_a_package_under_the_machines_tmp_stays_visible(workdir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A course cloned under /tmp (as CI does) keeps its environment inside the sandbox's private /tmp."""
    package = tmp_path / "site" / "probe_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    monkeypatch.setattr(sandbox, "_kernel_sys_path", lambda: [*sys.path, str(tmp_path / "site")])
    code = f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); import probe_pkg; print(probe_pkg.VALUE)"
    done = _run(code, workdir)
    assert done.returncode == 0 and done.stdout.strip() == "42", done.stderr
