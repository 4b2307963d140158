"""Last quarter's five incidents in the Orders team's pipeline, each a one-line edit of orders_pipeline.py.

Each shipped to production, and no test failed. Part C of Lab 1 asks for the tests that would have
caught them: ``variants()`` gives the correct pipeline and one version per incident, which
``coursekit.mutation.judge`` runs your tests against (the grader does the same, outside your kernel).
"""

from pathlib import Path

from coursekit.mutation import Variant
from coursekit.quality import Defect, pipeline_source

PIPELINE = Path(__file__).with_name("orders_pipeline.py")

INCIDENTS = [
    Defect("dropped_filter", "any attempt's amount counts as captured: a declined-only order is 'paid'",
           "max(CASE WHEN status = 'captured' THEN amount_cents END)", "max(amount_cents)"),
    Defect("wrong_join_key", "customers are joined on the region both tables have, not on customer_id",
           "ON c.customer_id = o.customer_id", "ON c.region = o.region"),
    Defect("unit_error", "paid_eur stays in cents, the payments domain's unit",
           "coalesce(a.captured_cents, 0) / 100 AS paid_eur", "coalesce(a.captured_cents, 0) AS paid_eur"),
    Defect("duplicated_rows", "the at-least-once feed is not deduplicated: a replayed order is two rows",
           "    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY placed_at) = 1\n", ""),
    Defect("timezone_slip", "order_date is the day in Amsterdam (UTC+1 in November), not the UTC day",
           "timezone('UTC', o.placed_at)", "timezone('Europe/Amsterdam', o.placed_at)"),
]


def variants() -> tuple[Variant, list[Variant]]:
    """The correct pipeline, and the pipeline with each incident planted, as ``coursekit.mutation`` variants."""
    source = PIPELINE.read_text(encoding="utf-8")
    defects = [Variant(d.name, pipeline_source(d.name, source=source, defects={d.name: d}), d.what) for d in INCIDENTS]
    return Variant("correct", source), defects
