"""coursekit.pipelines: the revenue function, the lesson 07 repository, workflow validation and the local runner.

Quick tests only: no SQLMesh (its first start costs seconds); the lesson's notebook test runs the SQLMesh parts.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from coursekit import data, pipelines


def test_daily_revenue_counts_captures_and_refunds_on_their_own_utc_days() -> None:
    orders = pipelines.order_rows(("O1", "north"), ("O2", "south"))
    payments = pipelines.payment_rows(("O1", "declined", 990, "2026-11-02 10:00", None),
                                      ("O1", "captured", 990, "2026-11-02 23:30", None),
                                      ("O2", "refunded", 800, "2026-11-02 09:00", "2026-11-05 10:00"))
    got = pipelines.daily_revenue(orders, payments)
    assert got.to_dict("records") == [
        {"day": dt.date(2026, 11, 2), "region": "north", "revenue_eur": 9.9},
        {"day": dt.date(2026, 11, 2), "region": "south", "revenue_eur": 8.0},
        {"day": dt.date(2026, 11, 5), "region": "south", "revenue_eur": -8.0}]


def test_daily_revenue_refuses_payments_of_unknown_orders() -> None:
    with pytest.raises(ValueError, match="do not exist"):
        pipelines.daily_revenue(pipelines.order_rows(("O1", "north")),
                                pipelines.payment_rows(("O9", "captured", 100, "2026-11-02 10:00", None)))


def test_daily_revenue_nets_to_captured_minus_refunded_on_brightcart_data() -> None:
    orders, payments = data.orders(300, seed=3), data.payments(300, seed=3)
    got = pipelines.daily_revenue(orders, payments)
    paid = payments[payments["status"].isin(["captured", "refunded"])]["amount_cents"].sum()
    refunded = payments[payments["status"] == "refunded"]["amount_cents"].sum()
    assert got["revenue_eur"].sum() == pytest.approx((paid - refunded) / 100)
    assert not got.duplicated(["day", "region"]).any()


def test_write_repo_makes_a_self_contained_repository_and_replaces_only_its_own(tmp_path: Path) -> None:
    repo = pipelines.write_repo(tmp_path / "repo")
    for name in (".github/workflows/ci.yml", "ci/pr_report.py", "brightcart/revenue.py", "tests/builders.py",
                 "requirements.lock", "pyproject.toml", "warehouse/models/daily_revenue.sql",
                 "warehouse/tests/test_daily_revenue.yaml", "warehouse/audits/refunds_are_consistent.sql"):
        assert (repo / name).is_file(), name
    assert "sqlmesh==" in (repo / "requirements.lock").read_text()
    (repo / "leftover.txt").write_text("x")
    pipelines.write_repo(repo)                      # a second run starts clean
    assert not (repo / "leftover.txt").exists()
    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    with pytest.raises(FileExistsError):
        pipelines.write_repo(foreign)


def test_edit_changes_exactly_one_occurrence(tmp_path: Path) -> None:
    file = tmp_path / "model.sql"
    file.write_text("SELECT a FROM t WHERE a > 0")
    assert pipelines.edit(file, "a > 0", "a >= 0") == "SELECT a FROM t WHERE a >= 0"
    with pytest.raises(ValueError, match="exactly one"):
        pipelines.edit(file, "a", "b")


def test_validate_workflow_accepts_the_lesson_workflow_and_rejects_a_job_without_runs_on(tmp_path: Path) -> None:
    repo = pipelines.write_repo(tmp_path / "repo")
    assert pipelines.validate_workflow(repo / ".github" / "workflows" / "ci.yml") == (True, "ok -- validation done")
    valid, message = pipelines.validate_workflow("on: push\njobs:\n  a:\n    steps:\n      - run: echo hi\n")
    assert not valid and "'runs-on' is a required property" in message


WORKFLOW = """\
on:
  pull_request:
env:
  GREETING: hello
jobs:
  demo:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v6
      - name: Greet
        run: echo "$GREETING from $(basename "$PWD"), token $TOKEN" && echo "### done" >> "$GITHUB_STEP_SUMMARY"
        env:
          TOKEN: ${{ secrets.TOKEN }}
      - name: Fail
        run: |
          echo about to fail
          false
          echo never printed
      - name: After
        run: echo never run
"""


def test_run_workflow_runs_steps_in_order_stops_at_the_first_failure_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    run = pipelines.run_workflow(WORKFLOW, tmp_path / "repo", secrets={"TOKEN": "s3cr3t"}, workdir=tmp_path / "runs")
    assert [(s.name, s.status) for s in run.steps] == [
        ("uses: actions/checkout@v6", "simulated"), ("Greet", "passed"), ("Fail", "failed"), ("After", "not run")]
    assert run.steps[1].output.strip() == "hello from checkout, token ***"
    assert "never printed" not in run.steps[2].output, "bash -e stops a script at its first failing command"
    assert run.summary.strip() == "### done" and not run.passed and run.failed_step is run.steps[2]
    assert "s3cr3t" not in run.log


def test_run_workflow_allows_a_failure_with_continue_on_error_and_refuses_what_it_cannot_simulate(
        tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    allowed = WORKFLOW.replace("      - name: Fail\n", "      - name: Fail\n        continue-on-error: true\n")
    run = pipelines.run_workflow(allowed, tmp_path / "repo", secrets={"TOKEN": "t"}, workdir=tmp_path / "runs")
    assert [s.status for s in run.steps][2:] == ["failed, allowed", "passed"] and run.passed
    with pytest.raises(NotImplementedError, match="not evaluated"):
        pipelines.run_workflow(WORKFLOW.replace("${{ secrets.TOKEN }}", "${{ github.sha }}"), tmp_path / "repo",
                               workdir=tmp_path / "runs")
    with pytest.raises(KeyError, match="TOKEN"):
        pipelines.run_workflow(WORKFLOW, tmp_path / "repo", workdir=tmp_path / "runs")
    not_triggered = pipelines.run_workflow(WORKFLOW.replace("pull_request", "push"), tmp_path / "repo",
                                           secrets={"TOKEN": "t"}, workdir=tmp_path / "runs")
    assert not not_triggered.steps and "not triggered" in not_triggered.notes[0]


def test_setup_python_is_checked_against_this_interpreter(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    steps = "on: pull_request\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/setup-python@v6\n" \
            "        with:\n          python-version: {}\n      - run: python --version\n"
    as_number = pipelines.run_workflow(steps.format("3.10"), tmp_path / "repo", workdir=tmp_path / "runs")
    assert as_number.steps[0].status == "failed" and "YAML number" in as_number.steps[0].note
    assert "Python 3.1;" in as_number.steps[0].output
    import platform

    minor = ".".join(platform.python_version().split(".")[:2])
    pinned = pipelines.run_workflow(steps.format(f'"{minor}"'), tmp_path / "repo", workdir=tmp_path / "runs")
    assert pinned.passed and platform.python_version() in pinned.steps[1].output


def test_the_ci_report_names_pr_environments_and_formats_cells_for_reviewers(tmp_path: Path) -> None:
    import pandas as pd

    report = pipelines.load_module(pipelines.write_repo(tmp_path / "repo") / "ci" / "pr_report.py")
    assert report.environment_name("feature/Only-Captured payments") == "pr_feature_only_captured_payments"
    assert report.environment_name("---") == "pr_local"
    assert report._cell(pd.Timestamp("2026-11-02")) == "2026-11-02"
    assert report._cell(pd.Timestamp("2026-11-02 23:30", tz="Pacific/Chatham")) == "2026-11-02 09:45 UTC"


def test_in_process_runs_a_python_step_in_this_interpreter_with_its_env_and_exit_status(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "ci").mkdir(parents=True)
    (repo / "ci" / "step.py").write_text(
        "import os, sys\nprint('cwd', os.path.basename(os.getcwd()), 'arg', sys.argv[1], 'env', os.environ['COLOUR'])\n"
        "sys.exit(int(sys.argv[2]))\n")
    workflow = ("on: pull_request\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    env:\n      COLOUR: teal\n"
                "    steps:\n      - run: python ci/step.py hello {code}\n      - run: echo after\n")
    before = dict(os.environ)
    ok = pipelines.run_workflow(workflow.format(code=0), repo, workdir=tmp_path / "runs", in_process=True)
    assert ok.passed and ok.steps[0].note == "in this interpreter"
    assert "cwd checkout arg hello env teal" in ok.steps[0].output and ok.steps[1].note == ""
    failed = pipelines.run_workflow(workflow.format(code=3), repo, workdir=tmp_path / "runs", in_process=True)
    assert failed.failed_step is failed.steps[0] and failed.steps[0].returncode == 3
    assert failed.steps[1].status == "not run"
    assert dict(os.environ) == before and "COLOUR" not in os.environ
    assert pipelines._python_command("python -m pytest -q") == ["-m", "pytest", "-q"]
    assert pipelines._python_command("python -m pytest -q || true") is None   # shell syntax: bash runs it
    assert pipelines._python_command("ruff check .") is None
