"""Brightcart's pipeline code for lesson 07, its repository, and a local runner of a workflow's ``run:`` steps.

::

    from coursekit import pipelines
    pipelines.daily_revenue(orders, payments)              # net revenue per UTC day and region, in EUR
    repo = pipelines.write_repo(folder)                     # the pipeline repository the lesson puts under CI
    ok, message = pipelines.validate_workflow(repo / ".github/workflows/ci.yml")   # check-jsonschema
    run = pipelines.run_workflow(repo / ".github/workflows/ci.yml", repo, job="checks")
    print(run.log)

:func:`run_workflow` is **not** GitHub Actions. It runs the ``run:`` steps of one job, in order, with
bash as GitHub's Linux runners do, in a fresh copy of the repository, and stops at the first step that
fails. What it simulates, and how, is in its docstring; ``act`` (nektos/act) runs whole workflows,
``uses:`` actions included, in Docker containers.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

TEMPLATE = "templates/l07"
MARKER = ".brightcart-repo"   # written into every repository write_repo makes; only those are replaced
LOCKED = ("duckdb", "pandas", "pytest", "ruff", "sqlmesh")
SCHEMA = "vendor.github-workflows"
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_SECRET = re.compile(r"^secrets\.([A-Za-z_][A-Za-z0-9_]*)$")


def daily_revenue(orders: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """Net revenue in EUR per UTC day and region.

    A payment whose ``status`` is ``captured`` or ``refunded`` earns its ``amount_cents`` on the UTC day
    it was captured (``created_at``); a ``refunded`` one gives it back on the UTC day of its refund
    (``refunded_at``). Declined attempts earn nothing. The region is the order's (``orders.region``).
    Returns ``day`` (a date), ``region`` and ``revenue_eur``: one row per day and region with any
    money moving, sorted by day and region.
    """
    paid = payments[payments["status"].isin(["captured", "refunded"])]
    refunded = paid[paid["status"] == "refunded"]
    moves = pd.concat([
        pd.DataFrame({"order_id": paid["order_id"], "at": paid["created_at"], "cents": paid["amount_cents"]}),
        pd.DataFrame({"order_id": refunded["order_id"], "at": refunded["refunded_at"],
                      "cents": -refunded["amount_cents"]}),
    ], ignore_index=True)
    moves = moves.merge(orders[["order_id", "region"]], on="order_id", how="left", validate="many_to_one")
    unknown = moves.loc[moves["region"].isna(), "order_id"]
    if len(unknown):
        raise ValueError(f"payments of orders that do not exist: {sorted(set(unknown))[:5]}")
    moves["day"] = pd.to_datetime(moves["at"], utc=True).dt.date
    out = moves.groupby(["day", "region"], as_index=False)["cents"].sum()
    out["revenue_eur"] = out.pop("cents") / 100
    return out.sort_values(["day", "region"], ignore_index=True)


def order_rows(*rows: tuple[str, str]) -> pd.DataFrame:
    """Orders for a unit test: ``(order_id, region)`` tuples, with the orders domain's column names."""
    return pd.DataFrame(list(rows), columns=["order_id", "region"])


def payment_rows(*rows: tuple[str, str, int, str | None, str | None]) -> pd.DataFrame:
    """Payments for a unit test: ``(order_id, status, amount_cents, created_at, refunded_at)`` tuples.

    Times are text in UTC (``"2026-11-02 23:30"``) or ``None``; they become UTC timestamps, as in
    the payments domain's table.
    """
    frame = pd.DataFrame(list(rows), columns=["order_id", "status", "amount_cents", "created_at", "refunded_at"])
    for column in ("created_at", "refunded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# ---- the pipeline repository -------------------------------------------------------------------------

def template(path: str) -> str:
    """The text of one template file of lesson 07 (``templates/l07/<path>``)."""
    return resources.files("coursekit").joinpath(f"{TEMPLATE}/{path}").read_text(encoding="utf-8")


def lock(packages: tuple[str, ...] = LOCKED) -> str:
    """A requirements lock of ``packages`` and everything they need, at the versions installed here.

    A real repository compiles its lock from an index (``uv pip compile --generate-hashes``, or
    ``uv lock``); offline, the installed versions are the truth, so this walks their metadata.
    """
    import importlib.metadata as metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pinned: dict[str, str] = {}
    todo = list(packages)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in pinned:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue   # an optional dependency that is not installed here
        pinned[name] = dist.version
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue   # metadata pip would reject too
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    header = (f"# Locked from the environment that runs lesson 07 (Python {platform.python_version()}): "
              f"{', '.join(packages)} and what they need.\n")
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pinned.items()))


def write_repo(folder: str | Path) -> Path:
    """(Re)create Brightcart's pipeline repository in ``folder``; return its path.

    It holds the Python pipeline (``brightcart/revenue.py``, a copy of :func:`daily_revenue`), a
    ``tests/`` folder for pytest, the SQLMesh project (``warehouse/``: models, audits, unit tests),
    the CI workflow (``.github/workflows/ci.yml``) and the script its last step runs
    (``ci/pr_report.py``), a ``pyproject.toml`` (ruff, pytest) and a ``requirements.lock``. A folder that
    :func:`write_repo` did not make is never deleted: it raises instead.
    """
    import inspect

    root = Path(folder)
    if root.exists():
        if not (root / MARKER).is_file():
            raise FileExistsError(f"{root} exists and was not made by write_repo: choose an empty folder")
        shutil.rmtree(root)
    source = resources.files("coursekit").joinpath(f"{TEMPLATE}/warehouse")
    with resources.as_file(source) as warehouse:
        shutil.copytree(warehouse, root / "warehouse")
    files = {
        MARKER: "made by coursekit.pipelines.write_repo (lesson 07)\n",
        "pyproject.toml": template("repo-pyproject.toml"),
        "requirements.lock": lock(),
        ".github/workflows/ci.yml": template("ci.yml"),
        "ci/pr_report.py": template("pr_report.py"),
        "brightcart/__init__.py": '"""Brightcart\'s Python pipelines."""\n',
        "brightcart/revenue.py": ('"""Daily revenue per region (a copy of coursekit.pipelines.daily_revenue)."""\n\n'
                                  "import pandas as pd\n\n\n" + inspect.getsource(daily_revenue)),
        "tests/__init__.py": "",
        "tests/builders.py": ('"""Small inputs for unit tests (copies of coursekit.pipelines\' builders)."""\n\n'
                              "import pandas as pd\n\n\n" + inspect.getsource(order_rows) + "\n\n"
                              + inspect.getsource(payment_rows)),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_pytest(repo: str | Path, *args: str) -> int:
    """Run the repository's tests with ``pytest.main`` in this process; return pytest's exit code.

    The repository's own ``pyproject.toml`` configures pytest (its ``pythonpath`` makes ``brightcart``
    importable). Its modules are forgotten before and after, so each run imports the files as they
    are now. CI runs the same tests in a fresh process instead (``python -m pytest``).
    """
    import pytest

    root = Path(repo).resolve()

    def forget() -> None:
        for name in [m for m in sys.modules if m.split(".")[0] in ("brightcart", "tests")]:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(root)):
                del sys.modules[name]

    forget()
    try:
        config = ["--rootdir", str(root), "-c", str(root / "pyproject.toml")]
        return int(pytest.main([*config, *args, str(root / "tests")]))
    finally:
        forget()


def load_module(path: str | Path, name: str | None = None) -> Any:
    """Import the Python file at ``path`` as a module (e.g. the repository's ``ci/pr_report.py``)."""
    import importlib.util

    file = Path(path)
    spec = importlib.util.spec_from_file_location(name or file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edit(path: str | Path, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` in the file at ``path`` by ``new`` (a change in a pull request);
    return the new text. Fails if ``old`` is not there exactly once, so an edit never silently misses."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise ValueError(f"{file.name}: expected exactly one {old!r}, found {text.count(old)}")
    text = text.replace(old, new)
    file.write_text(text, encoding="utf-8")
    return text


# ---- workflow files ----------------------------------------------------------------------------------

def _check_jsonschema() -> Any:
    """check-jsonschema's command (imported on first use: it loads jsonschema's format checkers)."""
    from check_jsonschema.cli.main_command import main

    return main


def validate_workflow(workflow: str | Path) -> tuple[bool, str]:
    """Validate a GitHub Actions workflow against check-jsonschema's built-in ``vendor.github-workflows``.

    ``workflow`` is a ``Path`` to the file, or the YAML text itself (a ``str``). This is the command
    ``check-jsonschema --builtin-schema vendor.github-workflows <file>`` run in this process (the
    schema ships inside check-jsonschema: nothing is downloaded). Returns ``(valid, its output)``.
    """
    main = _check_jsonschema()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(workflow) if isinstance(workflow, Path) else None
        if path is None:
            path = Path(scratch) / "workflow.yml"
            path.write_text(str(workflow), encoding="utf-8")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main.main(["--builtin-schema", SCHEMA, str(path)], prog_name="check-jsonschema",
                                 standalone_mode=False)
            except SystemExit as stop:
                code = stop.code
        message = out.getvalue().strip()
        if not isinstance(workflow, Path):
            message = message.replace(str(path), path.name)   # not the scratch folder's name
    return code == 0, message


@dataclass
class StepResult:
    """One step of a local run: what it was, what happened, and its output."""

    name: str
    status: str            # "passed", "failed", "failed, allowed", "simulated", "skipped", "not run"
    command: str = ""
    output: str = ""
    seconds: float = 0.0
    returncode: int | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "simulated", "skipped", "failed, allowed")


@dataclass
class WorkflowRun:
    """The outcome of :func:`run_workflow`: its steps, the job summary they wrote, and where it ran."""

    job: str
    checkout: Path
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every step ran and none failed (a step allowed to fail does not fail the job)."""
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        """The step that stopped the run, if any."""
        return next((s for s in self.steps if s.status == "failed"), None)

    @property
    def outline(self) -> str:
        """One line per step: its status, name and time (the log without the steps' output)."""
        return "\n".join(line for line in self.log.splitlines() if not line.startswith("    "))

    @property
    def log(self) -> str:
        """The run's log, step by step, as GitHub shows a job's."""
        marks = {"passed": "✔", "failed": "✘", "simulated": "◌", "skipped": "–", "not run": "·",
                 "failed, allowed": "!"}
        lines = [f"job {self.job!r} in {self.checkout}", *(f"  note: {n}" for n in self.notes)]
        for step in self.steps:
            extra = f"  ({step.note})" if step.note else ""
            timing = f"  {step.seconds:.1f} s" if step.command else ""
            code = f"  exit code {step.returncode}" if step.returncode else ""
            lines.append(f"{marks[step.status]} {step.name}  [{step.status}]{timing}{code}{extra}")
            if step.command:
                lines += ["    $ " + line for line in step.command.strip().splitlines()]
            if step.output.strip():
                lines += ["    " + line for line in step.output.rstrip().splitlines()]
        verdict = "passed" if self.passed else f"failed at step {self.failed_step.name!r}" if self.failed_step \
            else "did not run"
        lines.append(f"job {self.job!r} {verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.log


_SHELLS = {None: ["bash", "-e", "{0}"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"],
           "sh": ["sh", "-e", "{0}"], "python": ["python", "{0}"]}


def _triggers(workflow: dict[Any, Any]) -> set[str]:
    # PyYAML reads YAML 1.1, where a bare `on` key is the boolean True
    on = workflow.get("on", workflow.get(True, {}))
    if isinstance(on, str):
        return {on}
    return set(on) if isinstance(on, list | dict) else set()


def _text(value: Any, secrets: dict[str, str], where: str) -> str:
    """A workflow value as the runner sees it: booleans as true/false, ``${{ secrets.X }}`` replaced."""
    text = str(value).lower() if isinstance(value, bool) else str(value)

    def substitute(match: re.Match[str]) -> str:
        secret = _SECRET.match(match.group(1))
        if secret is None:
            raise NotImplementedError(f"{where}: the expression ${{{{ {match.group(1)} }}}} is not evaluated by this "
                                      "local runner (only ${{ secrets.NAME }}, from the secrets you pass)")
        if secret.group(1) not in secrets:
            raise KeyError(f"{where} uses the secret {secret.group(1)}: pass it in secrets={{...}}")
        return secrets[secret.group(1)]

    return _EXPRESSION.sub(substitute, text)


def _python_matches(requested: str, actual: str) -> bool:
    return actual == requested or actual.startswith(requested + ".")


def _simulate_action(uses: str, step: dict[str, Any], checkout: Path) -> StepResult:
    action = uses.split("@")[0]
    name = step.get("name") or f"uses: {uses}"
    if action == "actions/checkout":
        return StepResult(name, "simulated", note=f"a fresh copy of the repository at {checkout}")
    if action == "actions/setup-python":
        requested = (step.get("with") or {}).get("python-version")
        actual = platform.python_version()
        if requested is None:
            return StepResult(name, "simulated", note=f"no python-version: not pinned; this runner uses {actual}")
        if not isinstance(requested, str):
            note = f"python-version is the YAML number {requested!r}, read as {str(requested)!r}"
            if not _python_matches(str(requested), actual):
                return StepResult(name, "failed", returncode=1, note=note,
                                  output=f"setup-python would install Python {requested}; this runner has {actual}")
            return StepResult(name, "simulated", note=note + f"; this runner's Python is {actual}")
        if not _python_matches(requested, actual):
            return StepResult(name, "failed", returncode=1,
                              output=f"setup-python would install Python {requested}; this runner has {actual}")
        return StepResult(name, "simulated", note=f"this kernel's Python {actual}, first on PATH")
    if action == "astral-sh/setup-uv":
        return StepResult(name, "simulated", note="the uv installed next to this kernel's Python")
    return StepResult(name, "skipped", note="this runner does not execute actions")


def run_workflow(workflow: str | Path, repo: str | Path, *, job: str | None = None,
                 secrets: dict[str, str] | None = None, event: str = "pull_request", branch: str = "local",
                 workdir: str | Path | None = None, timeout: float = 600, in_process: bool = False) -> WorkflowRun:
    """Run the ``run:`` steps of one job of ``workflow`` (a ``Path``, or the YAML text) on a copy of ``repo``.

    What is real: each ``run:`` step is a bash script run in order, as on GitHub's Linux runners (no
    ``shell:``: ``bash -e``; ``shell: bash``: ``bash --noprofile --norc -eo pipefail``), in the step's
    ``working-directory`` of a fresh copy of ``repo``, with the workflow's, the job's and the step's ``env``,
    GitHub's ``CI``, ``GITHUB_ACTIONS``, ``GITHUB_WORKSPACE``, ``GITHUB_EVENT_NAME``, ``GITHUB_HEAD_REF``
    (``branch``), ``GITHUB_BASE_REF`` and ``GITHUB_STEP_SUMMARY`` (a file per step; the run's ``summary`` joins
    them, as GitHub's job summary does); the first failing step stops the job
    (unless it has ``continue-on-error: true``), and the later ones are "not run". ``timeout-minutes`` is
    enforced per step.

    What is simulated: there is no runner VM (the steps run on this machine, as this user). ``uses:``
    actions are not executed: ``actions/checkout`` is the fresh copy, ``actions/setup-python`` checks that
    the requested version is this kernel's Python (which goes first on ``PATH``), ``astral-sh/setup-uv``
    is the uv beside it; any other action is skipped. Nothing is downloaded: ``UV_OFFLINE``,
    ``UV_NO_CACHE`` and ``PIP_NO_INDEX`` are set, so an install step passes only when the locked versions
    are the ones installed here. Secrets are only what you pass (``${{ secrets.NAME }}`` is replaced and
    masked as ``***`` in the log, as ``act -s NAME=value`` does); any other ``${{ }}`` expression, a
    step's ``if:``, ``strategy.matrix``, ``services`` and ``container`` are refused, not guessed.

    ``in_process=True``: a step whose script is one ``python -m MODULE ...`` or ``python FILE.py ...`` command
    runs in *this* interpreter (``runpy``, as ``python`` would run it: ``sys.argv``, the step's directory and
    environment, its exit status) instead of a fresh process, so what this process imported already (pytest,
    SQLMesh) is not imported again. The modules it imports from the checkout are forgotten afterwards;
    ``timeout-minutes`` is not enforced on such a step. Every other step still runs in bash.
    """
    import yaml

    secrets = dict(secrets or {})
    text = Path(workflow).read_text(encoding="utf-8") if isinstance(workflow, Path) else str(workflow)
    spec = yaml.safe_load(text)
    if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), dict) or not spec["jobs"]:
        raise ValueError("not a workflow: it needs a `jobs:` mapping with at least one job")
    jobs = spec["jobs"]
    if job is None:
        if len(jobs) != 1:
            raise ValueError(f"the workflow has jobs {sorted(jobs)}: name the one to run with job=...")
        job = next(iter(jobs))
    if job not in jobs:
        raise KeyError(f"no job {job!r} in the workflow; its jobs are {sorted(jobs)}")
    spec_job = jobs[job] or {}
    for unsupported in ("services", "container"):
        if unsupported in spec_job:
            raise NotImplementedError(f"job {job!r} uses `{unsupported}:`, which this local runner does not simulate")
    if "matrix" in (spec_job.get("strategy") or {}):
        raise NotImplementedError(f"job {job!r} has a strategy.matrix: this local runner runs one job once")

    base = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{job}-", dir=base))
    checkout = run_dir / "checkout"
    shutil.copytree(repo, checkout, ignore=shutil.ignore_patterns(
        ".cache", "__pycache__", ".ruff_cache", ".pytest_cache", "logs", MARKER))
    runner_temp = run_dir / "runner-temp"
    runner_temp.mkdir()
    result = WorkflowRun(job, checkout)
    if event not in _triggers(spec):
        result.notes.append(f"the workflow is not triggered by {event} events (on: {sorted(_triggers(spec))})")
        return result
    if "if" in spec_job:
        result.notes.append(f"the job's `if: {spec_job['if']}` is not evaluated: you chose to run this job")

    python_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update({
        "PATH": python_bin + os.pathsep + env.get("PATH", ""), "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(checkout), "GITHUB_EVENT_NAME": event, "GITHUB_HEAD_REF": branch,
        "GITHUB_BASE_REF": "main", "RUNNER_TEMP": str(runner_temp),
        "RUNNER_OS": "Linux", "UV_PYTHON": sys.executable, "UV_OFFLINE": "1", "UV_NO_CACHE": "1",
        "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    })
    for scope, values in (("workflow env", spec.get("env")), (f"job {job!r} env", spec_job.get("env"))):
        env.update({str(k): _text(v, secrets, scope) for k, v in (values or {}).items()})
    defaults = ((spec.get("defaults") or {}).get("run") or {}) | ((spec_job.get("defaults") or {}).get("run") or {})

    def mask(output: str) -> str:
        for value in secrets.values():
            if value:
                output = output.replace(value, "***")
        return output

    stopped = False
    for number, step in enumerate(spec_job.get("steps") or [], start=1):
        if not isinstance(step, dict):
            raise ValueError(f"step {number} of job {job!r} is not a mapping")
        label = str(step.get("name") or (f"uses: {step['uses']}" if "uses" in step
                                         else "Run " + str(step.get("run", "")).strip().splitlines()[0]))
        if stopped:
            result.steps.append(StepResult(label, "not run", note="an earlier step failed"))
            continue
        if "if" in step:
            raise NotImplementedError(f"step {label!r} has `if: {step['if']}`: this local runner does not evaluate "
                                      "conditions; remove it or run the workflow with act")
        if "uses" in step:
            outcome = _simulate_action(str(step["uses"]), step, checkout)
        else:
            summary_file = runner_temp / f"step-{number}-summary.md"   # one file per step, as on GitHub
            summary_file.touch()
            step_env = {**env, "GITHUB_STEP_SUMMARY": str(summary_file)}
            outcome = _run_step(step, label, number, checkout, runner_temp, step_env, defaults, secrets, timeout,
                                in_process)
            outcome.output = mask(outcome.output)
            result.summary += mask(summary_file.read_text(encoding="utf-8"))
        if outcome.status == "failed" and step.get("continue-on-error") is True:
            outcome.status, outcome.note = "failed, allowed", "continue-on-error: true lets the job go on"
        result.steps.append(outcome)
        stopped = outcome.status == "failed"
    return result


def _run_step(step: dict[str, Any], label: str, number: int, checkout: Path, runner_temp: Path,
              env: dict[str, str], defaults: dict[str, Any], secrets: dict[str, str], timeout: float,
              in_process: bool = False) -> StepResult:
    where = f"step {label!r}"
    script = _text(step.get("run", ""), secrets, where)
    shell = step.get("shell", defaults.get("shell"))
    if shell not in _SHELLS:
        raise NotImplementedError(f"{where}: shell {shell!r} is not simulated (bash, sh or python)")
    step_env = {**env, **{str(k): _text(v, secrets, where) for k, v in (step.get("env") or {}).items()}}
    cwd = checkout / _text(step.get("working-directory", defaults.get("working-directory", ".")), secrets, where)
    if not cwd.is_dir():
        return StepResult(label, "failed", step.get("run", ""), returncode=1,
                          output=f"working-directory {cwd.relative_to(checkout)} does not exist in the checkout")
    argv = _python_command(script) if in_process and shell in (None, "bash", "sh") else None
    if argv is not None:
        return _run_in_process(label, str(step.get("run", "")), argv, cwd, checkout, step_env)
    file = runner_temp / f"step-{number}.{'py' if shell == 'python' else 'sh'}"
    file.write_text(script, encoding="utf-8")
    command = [part.replace("{0}", str(file)) for part in _SHELLS[shell]]
    limit = float(step["timeout-minutes"]) * 60 if "timeout-minutes" in step else timeout
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=step_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as late:
        output = late.stdout if isinstance(late.stdout, str) else (late.stdout or b"").decode(errors="replace")
        return StepResult(label, "failed", str(step.get("run", "")), output + f"\n(timed out after {limit:.0f} s)",
                          time.perf_counter() - start, returncode=-1)
    return StepResult(label, "passed" if done.returncode == 0 else "failed", str(step.get("run", "")),
                      done.stdout, time.perf_counter() - start, returncode=done.returncode)


def _python_command(script: str) -> list[str] | None:
    """``python``'s arguments when ``script`` is that one command (``-m MODULE ...`` or ``FILE.py ...``)."""
    import shlex

    lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(lines) != 1 or any(sign in lines[0] for sign in ("|", "&", ";", ">", "<", "$", "`")):
        return None
    argv = shlex.split(lines[0])
    if argv[:1] != ["python"] or len(argv) < 2:
        return None
    if (argv[1] == "-m" and len(argv) >= 3) or (not argv[1].startswith("-") and argv[1].endswith(".py")):
        return argv[1:]
    return None


def _run_in_process(label: str, command: str, argv: list[str], cwd: Path, checkout: Path,
                    env: dict[str, str]) -> StepResult:
    """Run ``python <argv>`` in this interpreter, in ``cwd`` with ``env``; restore everything afterwards."""
    import runpy
    import traceback

    saved_env, saved_argv, saved_path, saved_cwd = dict(os.environ), sys.argv[:], sys.path[:], os.getcwd()
    before = set(sys.modules)
    out = io.StringIO()
    start = time.perf_counter()
    code: int = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        module = argv[1] if argv[0] == "-m" else None
        sys.argv = [module or argv[0], *argv[2 if module else 1:]]
        sys.path.insert(0, str(cwd) if module else str((cwd / argv[0]).parent))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                if module:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(str(cwd / argv[0]), run_name="__main__")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if stop.code is not None and not isinstance(stop.code, int):
                    print(stop.code)
            except Exception:  # noqa: BLE001 - an uncaught exception is a failed step, as python's exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - before:   # the checkout's own modules: the next run imports them afresh
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(checkout)):
                del sys.modules[name]
    return StepResult(label, "passed" if code == 0 else "failed", command, out.getvalue(),
                      time.perf_counter() - start, returncode=code, note="in this interpreter")
