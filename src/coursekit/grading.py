"""nbgrader add-ons for this course, configured in ``nbgrader_config.py``.

* :class:`StderrIsNotFailure` (autograde): nbgrader scores a test cell with *any* stderr output as
  failed, so a correct solution that triggers a library's ``FutureWarning`` would lose the points.
  Here a test cell fails only when it raises; its stderr text is kept, marked, as ordinary output.
* :class:`HideHiddenTests` (feedback): nbgrader's feedback shows the hidden tests by default. This
  removes their code, and replaces the traceback of a failing hidden test (which quotes that code)
  with a plain sentence.
* :class:`ExecuteHiddenTests` (autograde, in place of ``Execute``): runs each submission in the
  grader kernel (:mod:`coursekit.graderkernel`: sandboxed, memory-capped from outside) and judges the
  lab's hidden tests in the grader's process, not in the student's kernel, where the submission could
  have patched anything (:mod:`coursekit.hidden`). The kernel's settings are re-exported here for
  ``nbgrader_config.py``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from coursekit import hidden, sandbox
from coursekit.graderkernel import COURSE_ENV, DEFAULT_MEMORY_MB, GRADER_KERNEL, MEMORY_ENV, jupyter_data_dir

__all__ = ["COURSE_ENV", "DEFAULT_MEMORY_MB", "GRADER_KERNEL", "MEMORY_ENV", "ExecuteHiddenTests",
           "HideHiddenTests", "StderrIsNotFailure", "jupyter_data_dir"]

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
PARTIAL = "coursekit/partial-credit"  # metadata key of the execute_result that carries a cell's partial credit
END_HIDDEN = "### END HIDDEN TESTS"
_HIDDEN_BLOCK = re.compile(rf"^[ \t]*{re.escape(BEGIN_HIDDEN)}[ \t]*$.*?^[ \t]*{re.escape(END_HIDDEN)}[ \t]*$",
                           re.DOTALL | re.MULTILINE)


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
    """Remove hidden test code from feedback, and everything that could show what it was given.

    nbgrader's feedback shows the hidden tests by default. Here their code is replaced by a note, a
    failing hidden test by a plain sentence, and the outputs of that cell and of every student cell
    after the first hidden test are not shown: the student's code could have printed its hidden inputs
    (or the cell history holding them), and a resubmission could hard-code the answers.
    """

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        seen_hidden = False
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if BEGIN_HIDDEN in cell.source:
                seen_hidden = True
                self._hide(cell)
            elif seen_hidden and cell.get("outputs"):
                cell.outputs = [new_output("stream", name="stdout",
                                           text="(output not shown in feedback: it ran after the hidden tests)\n")]
        return nb, resources

    @staticmethod
    def _hide(cell: NotebookNode) -> None:
        cell.source = _HIDDEN_BLOCK.sub("# (hidden tests: they check your code on other data)", cell.source)
        outputs = cell.get("outputs", [])
        if outputs and outputs[0].get("output_type") == "execute_result" and PARTIAL in outputs[0].get("metadata", {}):
            # the grader's partial credit (verify_hidden put it first): the points and why
            why = outputs[0]["metadata"][PARTIAL]
            cell.outputs = [outputs[0], new_output("stream", name="stdout", text=f"Partial credit: {why}\n")]
            return
        failed = any(o.get("output_type") == "error" for o in outputs)
        note = ("a test failed; if the visible tests above pass, a hidden test found a case your code gets "
                "wrong: re-read the part's instructions")
        cell.outputs = ([new_output("error", ename="TestFailed", evalue=note, traceback=[f"TestFailed: {note}"])]
                        if failed else [new_output("stream", name="stdout", text="All tests passed.\n")])


@dataclass
class Pending:
    """A test cell whose hidden test was prepared: where it is, its source as written, the test."""

    index: int
    grade_id: str
    source: str
    token: str
    test: hidden.Hidden


def prepare_hidden(nb: NotebookNode, resources: dict[str, Any]) -> list[Pending]:
    """Before execution: prepare each test cell's hidden inputs here, and leave the kernel only the call.

    The hidden block of a test cell whose lab has ``graders/<lab>.py`` with a function for that cell is
    replaced by code that calls the student's functions on the prepared inputs and reports the value.
    Inputs are seeded by the course secret, the student, the lab and the cell: a regrade sees the same.
    What is pending is returned, never written into the notebook (which the submission wrote).
    """
    root = os.environ.get(COURSE_ENV)
    info = resources.get("nbgrader", {})
    module = hidden.load(Path(root), info.get("assignment", "")) if root else None
    if module is None:
        return []
    key = hidden.course_secret(Path(root))
    pending: list[Pending] = []
    try:
        for index, cell in enumerate(nb.cells):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            make = hidden.checker(module, grade_id)
            if not _is_test_cell(cell) or make is None or not _HIDDEN_BLOCK.search(cell.source):
                continue
            try:
                test = make(random.Random(hidden.seed(  # noqa: S311 - data, not secrets
                    key, info.get("student", ""), info["assignment"], grade_id)))
            except Exception as exc:
                raise RuntimeError(f"could not prepare the hidden tests of {grade_id} (a problem of the grading "
                                   f"machine, not of the submission: {exc}); fix it and autograde again") from exc
            token = secrets.token_hex(12)
            pending.append(Pending(index, grade_id, cell.source, token, test))
            call = (f"{BEGIN_HIDDEN}\nfrom coursekit.hidden import report as _coursekit_report\n\n{test.setup}\n"
                    f"_coursekit_report({token!r}, {test.call})\n{END_HIDDEN}")
            cell.source = _HIDDEN_BLOCK.sub(lambda _, code=call: code, cell.source, count=1)
    except BaseException:
        clean_up(pending)
        raise
    return pending


def verify_hidden(nb: NotebookNode, pending: list[Pending], who: str, log: logging.Logger) -> None:
    """After execution: check what each hidden call reported, here; a failed check zeroes the cell.

    The value comes out of the kernel as JSON and is judged against the truth computed outside it, so a
    submission that patched the tests, forged output or swallowed errors gains nothing: the cell gets an
    error output first, which is what nbgrader scores as zero. Reports anywhere else are dropped.
    """
    by_index = {p.index: p for p in pending}
    for index, cell in enumerate(nb.cells):
        outputs = cell.get("outputs", [])
        reports = [o for o in outputs if isinstance(o.get("data"), dict) and hidden.MIME in o["data"]]
        if reports:
            cell.outputs = [o for o in outputs if not any(o is r for r in reports)]
        test = by_index.get(index)
        if test is None:
            continue
        cell.source = test.source
        mine = [r["data"][hidden.MIME] for r in reports
                if isinstance(r["data"][hidden.MIME], dict) and r["data"][hidden.MIME].get("token") == test.token]
        try:
            if len(mine) != 1:
                raise AssertionError("the hidden tests did not run to the end" if not mine
                                     else "the hidden call reported more than one result")
            verdict = test.test.verify(hidden.decode(mine[0].get("value")))
        except Exception as exc:  # noqa: BLE001 - whatever the check raises, the cell failed it
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc)
            log.warning("%s, %s: hidden tests failed: %s", who, test.grade_id, reason or "(no reason given)")
            # first, even before the kernel's own error: nbgrader scores the first error or number it meets
            cell.outputs.insert(0, new_output("error", ename="HiddenTestFailed", evalue=reason,
                                              traceback=[f"HiddenTestFailed: {reason}"]))
        else:
            # nbgrader scores a test cell by its first error or execute_result output; none of these cells ends
            # with a value, so any execute_result in it was forged by the kernel
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            if isinstance(verdict, hidden.Partial) and verdict.fraction < 1:
                if any(o.get("output_type") == "error" for o in cell.outputs):
                    continue  # its visible tests failed: nbgrader scores it zero
                points = float(cell.metadata.get("nbgrader", {}).get("points", 0))
                earned = round(points * max(0.0, verdict.fraction), 2)
                log.warning("%s, %s: partial credit, %s of %s points: %s", who, test.grade_id, earned, points,
                            verdict.why)
                cell.outputs.insert(0, new_output("execute_result", data={"text/plain": repr(earned)},
                                                  metadata={PARTIAL: verdict.why}, execution_count=None))
            else:
                passed = "Hidden tests passed (checked by the grader, outside this kernel).\n"
                cell.outputs.append(new_output("stream", name="stdout", text=passed))


def clean_up(pending: list[Pending]) -> None:
    """Remove what the hidden tests prepared (topics, files), whatever happened to the notebook."""
    for test in pending:
        try:
            test.test.cleanup()
        except Exception:  # noqa: BLE001, S110 - one failed clean-up must not keep the others from running
            pass


class SandboxKernelManager(AsyncKernelManager):
    """The kernel manager of grading: the kernel's sockets are Unix sockets in a fresh folder of its own.

    So the sandboxed kernel needs no network (``bwrap --unshare-net``: it cannot reach other kernels'
    ports on the machine's loopback), and no other sandbox sees its sockets.
    """

    _folder: str | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        # short: a Unix socket's path may not pass 107 bytes (a TMPDIR deep in a home directory would)
        short = "/tmp" if os.access("/tmp", os.W_OK) else None  # noqa: S108 - a private folder made in it
        previous, self._folder = self._folder, tempfile.mkdtemp(prefix="coursekit-kernel-", dir=short)
        if previous:  # a restart: the dead kernel's folder (and its supervisor's socket) is not reused
            shutil.rmtree(previous, ignore_errors=True)
        self.transport, self.ip = "ipc", os.path.join(self._folder, "k")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._folder and not restart:
            shutil.rmtree(self._folder, ignore_errors=True)


def _scrub(folder: Path, before: set[Path]) -> None:
    """After the kernel: remove every link, special file and file it made in its working copy.

    nbgrader then writes the graded notebook there, as the grader: through a symbolic link planted in
    place of the notebook it would overwrite any file the grader can write. Folders get their
    permissions back first (a kernel owning its copy could hide a link in a folder it made unreadable),
    and a folder that cannot be walked stops grading rather than being skipped.
    """
    def fail(error: OSError) -> None:
        raise error

    folder.chmod(0o755)
    for top, dirs, files in os.walk(folder, topdown=True, onerror=fail):
        for name in dirs:
            path = Path(top, name)
            if not path.is_symlink():
                path.chmod(0o755)
        for name in [*files, *dirs]:
            path = Path(top, name)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                path.unlink()
                dirs[:] = [d for d in dirs if d != name]
            elif path not in before:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                dirs[:] = [d for d in dirs if d != name]


class ExecuteHiddenTests(Execute):
    """nbgrader's ``Execute``, in the grading sandbox, with the lab's hidden tests judged here around it.

    Before the kernel starts: refuse to grade when the sandbox is on but cannot run (nothing is
    scored; the log says what to install), and prepare the hidden inputs. After it ran: verify the
    reports (:func:`verify_hidden`). The prepared topics and files are removed even when execution
    fails (a dead kernel, a timeout).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any], km: Any = None
                   ) -> tuple[NotebookNode, dict[str, Any]]:
        if sandbox.enabled() and (reason := sandbox.problem()) is not None:
            raise sandbox.SandboxUnavailable(reason, "fix it, then autograde again: nothing was scored")
        folder = resources.get("metadata", {}).get("path") or None
        work = Path(folder) if folder else None
        before = set(work.rglob("*")) if work else set()
        with hidden.workspace(work):
            pending = prepare_hidden(nb, resources)
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
            verify_hidden(nb, pending, resources.get("nbgrader", {}).get("student", "?"), self.log)
        finally:
            clean_up(pending)
            if work is not None and sandbox.enabled():
                _scrub(work, before)
        return nb, resources
