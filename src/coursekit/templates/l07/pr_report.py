"""The data checks of a pull request: SQLMesh unit tests, a plan into the PR's own environment, a data diff.

The workflow's last step runs ``python ci/pr_report.py`` in the repository's root. It writes a markdown
report to the job's summary page (the file named by ``$GITHUB_STEP_SUMMARY``) and to standard output,
and exits with 1 when a unit test or an audit fails. A data diff never fails the job: it shows the
reviewer what the change does to the data, and the reviewer decides.

Everything here is plain SQLMesh (``Context``, ``plan_builder``, ``apply``, ``table_diff``), so the same
functions also format a plan or a diff in a notebook.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

os.environ.setdefault("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "1")  # before sqlmesh is imported
# table_diff logs every statement it runs at the logger's own level (WARNING by default): keep them out
logging.getLogger("sqlmesh.core.engine_adapter").addHandler(logging.NullHandler())

PROJECT = "warehouse"
SAMPLE_ROWS = 5
_CATEGORIES = {"BREAKING": "breaking", "NON_BREAKING": "non-breaking", "INDIRECT_BREAKING": "indirect breaking",
               "INDIRECT_NON_BREAKING": "indirect non-breaking", "FORWARD_ONLY": "forward-only",
               "METADATA": "metadata only"}


def environment_name(branch: str | None = None) -> str:
    """The SQLMesh environment of a pull request: ``pr_`` and its branch name (``$GITHUB_HEAD_REF``)."""
    branch = branch or os.environ.get("GITHUB_HEAD_REF") or "local"
    return "pr_" + (re.sub(r"[^a-z0-9]+", "_", branch.lower()).strip("_") or "local")


def _name(snapshot: Any) -> str:
    return snapshot.model.name if snapshot.is_model else snapshot.name


def plan_summary(plan: Any) -> dict[str, Any]:
    """What a plan changes: ``directly`` and ``indirectly`` modified models with their change
    category, and the models it must ``backfill`` (compute) before the environment points at them."""
    snapshots = plan.context_diff.snapshots
    directly = {_name(snapshots[s]): snapshots[s].change_category for s in plan.directly_modified}
    indirectly = {_name(snapshots[s]): snapshots[s].change_category
                  for children in plan.indirectly_modified.values() for s in children}

    def category(value: Any) -> str:
        return value.name if value is not None else "UNCATEGORIZED"

    return {"environment": plan.environment_naming_info.name,
            "directly": {k: category(v) for k, v in sorted(directly.items())},
            "indirectly": {k: category(v) for k, v in sorted(indirectly.items())},
            "backfill": sorted(_name(snapshots[i.snapshot_id]) for i in plan.missing_intervals)}


def plan_markdown(plan: Any) -> list[str]:
    """The plan as markdown lines, as a reviewer reads it on the pull request."""
    summary = plan_summary(plan)
    lines = [f"### Plan for `{summary['environment']}`", ""]
    if not summary["directly"] and not summary["indirectly"]:
        lines.append("No model changes.")
    for kind in ("directly", "indirectly"):
        for model, category in summary[kind].items():
            lines.append(f"- `{model}`: {kind} modified, **{_CATEGORIES.get(category, category.lower())}**")
    lines.append("")
    backfill = summary["backfill"]
    lines.append("Backfill (computed now): " + (", ".join(f"`{m}`" for m in backfill) if backfill
                                                else "none: a virtual update, views repointed only"))
    return lines


def _cell(value: Any) -> str:
    """A value as a reviewer reads it: dates without a time, instants in UTC."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            return value.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None or value is pd.NaT else str(value)


def _table(frame: Any, limit: int) -> list[str]:
    frame = frame.head(limit)
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return [head, "|" + "---|" * len(frame.columns), *rows]


def diff_markdown(diff: Any, limit: int = SAMPLE_ROWS) -> list[str]:
    """A SQLMesh ``TableDiff`` (schema and rows, joined on the model's grain) as markdown lines."""
    source, target = diff.source_alias or diff.source, diff.target_alias or diff.target
    schema, rows = diff.schema_diff(), diff.row_diff()
    lines = [f"### Data diff of `{diff.model_name or diff.target}`: `{source}` → `{target}`", ""]
    changes = [f"added `{c}` {t.sql()}" for c, t in schema.added]
    changes += [f"removed `{c}` {t.sql()}" for c, t in schema.removed]
    changes += [f"`{c}` {a.sql()} → {b.sql()}" for c, (a, b) in schema.modified.items()]
    lines.append("Schema: " + ("; ".join(changes) if changes else "unchanged"))
    changed = rows.join_count - rows.full_match_count
    lines.append(f"Rows: {rows.source_count} in `{source}`, {rows.target_count} in `{target}`; "
                 f"{rows.full_match_count} identical, **{changed} changed**, "
                 f"**{rows.s_only_count} only in `{source}`**, **{rows.t_only_count} only in `{target}`**")
    if changed:
        lines += ["", f"Changed rows (sample of {min(changed, limit)}):", "", *_table(rows.joined_sample, limit)]
    only = ((rows.s_only_count, rows.s_sample, source), (rows.t_only_count, rows.t_sample, target))
    for count, sample, where in only:
        if count:
            lines += ["", f"Rows only in `{where}` (sample of {min(count, limit)}):", "", *_table(sample, limit)]
    return lines


def _finish(report: list[str], status: int) -> int:
    """Print the report, append it to the job summary, and return the step's exit status."""
    text = "\n".join(report) + "\n"
    print(text)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as sink:
            sink.write(text)
    return status


def main() -> int:
    from sqlmesh import Context
    from sqlmesh.utils.errors import NoChangesPlanError

    environment = environment_name()
    context = Context(paths=PROJECT)
    try:
        return _checks(context, environment, NoChangesPlanError)
    finally:
        context.close()  # releases the warehouse (DuckDB lets one process write to a file at a time)


def _checks(context: Any, environment: str, no_changes: type[Exception]) -> int:
    report = [f"## Data checks for `{environment}`", ""]
    tests = context.test()
    if not tests.wasSuccessful():
        report.append(f"**SQLMesh unit tests failed**: {len(tests.failures) + len(tests.errors)} of {tests.testsRun}")
        report += [f"```\n{detail.strip()}\n```" for _, detail in tests.failures + tests.errors]
        return _finish(report, 1)
    report += [f"SQLMesh unit tests: {tests.testsRun} passed.", ""]
    try:
        plan = context.plan_builder(environment, skip_tests=True).build()
    except no_changes:  # the PR changes no model (only Python code, say): nothing to plan or diff
        return _finish([*report, "No model changes: the models match prod, so there is no plan and no data diff."], 0)
    report += plan_markdown(plan)
    try:
        context.apply(plan)  # computes what the plan backfills, and runs every audit on it
    except Exception as error:  # noqa: BLE001 - any failure of the plan is the report's news
        return _finish([*report, "", f"**The plan failed** (an audit or a model): {error}"], 1)
    summary = plan_summary(plan)
    models = [m for m in {**summary["directly"], **summary["indirectly"]} if context.get_model(m).on]
    if models and context.state_reader.get_environment("prod"):
        for diff in context.table_diff("prod", environment, select_models=models, show=False):
            report += ["", *diff_markdown(diff)]
    return _finish(report, 0)


if __name__ == "__main__":
    sys.exit(main())
