"""nbgrader add-ons for this course, configured in ``nbgrader_config.py``.

* :class:`StderrIsNotFailure` (autograde): nbgrader scores a test cell with *any* stderr output as
  failed, so a correct solution that triggers a library's ``FutureWarning`` would lose the points.
  Here a test cell fails only when it raises; its stderr text is kept, marked, as ordinary output.
* :class:`HideHiddenTests` (feedback): nbgrader's feedback shows the hidden tests by default. This
  removes their code, and replaces the traceback of a failing hidden test (which quotes that code)
  with a plain sentence.
* :class:`PrepareHiddenTests` and :class:`VerifyHiddenTests` (autograde, around ``Execute``): a
  lab's hidden tests are judged in the grader's process, not in the student's kernel, where the
  submission could have patched anything (:mod:`coursekit.hidden`).
* :func:`grader_kernel` (``python -m coursekit.grading``): the kernel that autograding runs, with a
  memory cap on its whole process tree, so that one submission cannot take the machine down, and
  (on Linux) in private namespaces where ``source/``, the gradebook, ``tests/``, ``.git`` and the
  other students' folders are hidden, so that a submission cannot read solutions or hidden tests,
  and in a private PID namespace, so that nothing it starts outlives it.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit import hidden

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
_HIDDEN_BLOCK = re.compile(rf"^[ \t]*{re.escape(BEGIN_HIDDEN)}[ \t]*$.*?^[ \t]*{re.escape(END_HIDDEN)}[ \t]*$",
                           re.DOTALL | re.MULTILINE)
MEMORY_ENV = "COURSEKIT_GRADER_MEMORY_MB"
DEFAULT_MEMORY_MB = 1400


def _is_test_cell(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class StderrIsNotFailure(NbGraderPreprocessor):
    """Turn stderr stream outputs of test cells into stdout ones (marked), so only errors fail them."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int
                        ) -> tuple[NotebookNode, dict[str, Any]]:
        if _is_test_cell(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    output["text"] = "".join(f"[stderr] {line}" for line in output["text"].splitlines(True))
        return cell, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden test code from feedback, and the tracebacks that would quote it."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int
                        ) -> tuple[NotebookNode, dict[str, Any]]:
        if cell.cell_type != "code" or BEGIN_HIDDEN not in cell.source:
            return cell, resources
        cell.source = _HIDDEN_BLOCK.sub("# (hidden tests: they check your code on other data)", cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["evalue"] = ("a test failed; if the visible tests above pass, a hidden test found a case "
                                    "your code gets wrong: re-read the part's instructions")
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output['evalue']}"]
        return cell, resources


# tests prepared by PrepareHiddenTests and not yet verified, by the token put in their cell's metadata:
# the cell's grade id, its source as written (restored afterwards, so nbgrader's checksum still matches), the test
_PENDING: dict[str, tuple[str, str, hidden.Hidden]] = {}


class PrepareHiddenTests(NbGraderPreprocessor):
    """Before execution: prepare each test cell's hidden inputs here, and leave the kernel only the call.

    The hidden block of a test cell whose lab has ``graders/<lab>.py`` with a function for that cell is
    replaced by code that calls the student's functions on the prepared inputs and reports the value.
    """

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        root = os.environ.get(COURSE_ENV)
        info = resources.get("nbgrader", {})
        module = hidden.load(Path(root), info.get("assignment", "")) if root else None
        if module is None:
            return nb, resources
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            make = hidden.checker(module, grade_id)
            if not _is_test_cell(cell) or make is None or not _HIDDEN_BLOCK.search(cell.source):
                continue
            try:
                test = make(random.Random(hidden.seed(  # noqa: S311 - data, not secrets
                    info.get("student", ""), info["assignment"], grade_id)))
            except Exception as exc:
                raise RuntimeError(f"could not prepare the hidden tests of {grade_id} (a problem of the grading "
                                   f"machine, not of the submission: {exc}); fix it and autograde again") from exc
            token = secrets.token_hex(12)
            _PENDING[token] = (grade_id, cell.source, test)
            cell.metadata["coursekit_hidden"] = token
            call = (f"{BEGIN_HIDDEN}\nfrom coursekit.hidden import report as _coursekit_report\n\n{test.setup}\n"
                    f"_coursekit_report({token!r}, {test.call})\n{END_HIDDEN}")
            cell.source = _HIDDEN_BLOCK.sub(lambda _, code=call: code, cell.source, count=1)
        return nb, resources


class VerifyHiddenTests(NbGraderPreprocessor):
    """After execution: check what each hidden call reported, here; a failed check zeroes the cell.

    The value comes out of the kernel as JSON and is judged against the truth computed outside it, so a
    submission that patched the tests, forged output or swallowed errors gains nothing: the cell gets an
    error output first, which is what nbgrader scores as zero.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any], index: int
                        ) -> tuple[NotebookNode, dict[str, Any]]:
        token = cell.metadata.pop("coursekit_hidden", None)
        outputs = cell.get("outputs", [])
        reports = [o for o in outputs if isinstance(o.get("data"), dict) and hidden.MIME in o["data"]]
        if reports:
            cell.outputs = [o for o in outputs if not any(o is r for r in reports)]
        if token is None:
            return cell, resources
        grade_id, cell.source, test = _PENDING.pop(token)
        mine = [r["data"][hidden.MIME] for r in reports
                if isinstance(r["data"][hidden.MIME], dict) and r["data"][hidden.MIME].get("token") == token]
        who = resources.get("nbgrader", {}).get("student", "?")
        try:
            if len(mine) != 1:
                raise AssertionError("the hidden tests did not run to the end" if not mine
                                     else "the hidden call reported more than one result")
            test.verify(hidden.decode(mine[0].get("value")))
        except Exception as exc:  # noqa: BLE001 - whatever the check raises, the cell failed it
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc)
            self.log.warning("%s, %s: hidden tests failed: %s", who, grade_id, reason or "(no reason given)")
            # first, even before the kernel's own error: nbgrader scores the first error or number it meets
            cell.outputs.insert(0, new_output("error", ename="HiddenTestFailed", evalue=reason,
                                              traceback=[f"HiddenTestFailed: {reason}"]))
        else:
            passed = "Hidden tests passed (checked by the grader, outside this kernel).\n"
            cell.outputs.append(new_output("stream", name="stdout", text=passed))
        finally:
            test.cleanup()
        return cell, resources


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
                         sys.executable, "-m", "coursekit.grading", *sys.argv[1:]], env)


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
