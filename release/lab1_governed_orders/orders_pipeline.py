"""The Orders team's pipeline: the ``order_facts`` table of the orders data product (Lab 1).

order_facts(orders, payments, customers) -> one row per order placed whose customer is in customers (an
inner join), sorted by order_id:

    order_id     str        the order (the checkout feed is at-least-once: a replayed order counts once)
    customer_id  str
    segment      str        the customer's segment (from customers, joined on customer_id)
    region       str
    items        int
    status       str        'paid' (an attempt was captured), 'refunded' (an attempt was captured, then
                            refunded) or 'unpaid' (no attempt captured: declined, or never tried)
    paid_eur     float      the captured amount in euros (payments are in cents); 0.0 unless 'paid'
    attempts     int        the order's rows in payments (0 when none)
    placed_at    timestamp  when the order was placed (UTC, time-zone aware)
    order_date   date       the UTC day of placed_at (a datetime.date)

Inputs are the frames of coursekit.data: orders(...), payments(...) and customers(...). payments has one
row per attempt, whose status is 'captured', 'declined' or 'refunded': a refund is not a row of its own,
the captured attempt's row says 'refunded' (and refunded_at when). The pipeline reads orders' order_id,
customer_id, region, items and placed_at; payments' order_id, status and amount_cents; customers'
customer_id, region and segment. It runs on an in-memory DuckDB with the session time zone set to UTC.
orders' placed_at must be time-zone aware (pandas' datetime64[ns, UTC], as pd.to_datetime(..., utc=True)
gives): a naive timestamp says no time zone, and the pipeline refuses it rather than guess one.
"""

import duckdb

ORDER_FACTS = """
WITH landed AS (    -- the checkout feed is at-least-once: keep one row per order
    SELECT * FROM orders
    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY placed_at) = 1
),
attempts AS (       -- payments has one row per attempt
    SELECT order_id, count(*) AS attempts,
           max(CASE WHEN status = 'captured' THEN amount_cents END) AS captured_cents,
           bool_or(status = 'refunded') AS refunded
    FROM payments
    GROUP BY order_id
)
SELECT o.order_id, o.customer_id, c.segment, o.region, o.items,
       CASE WHEN a.captured_cents IS NOT NULL THEN 'paid'
            WHEN a.refunded THEN 'refunded'
            ELSE 'unpaid' END AS status,
       coalesce(a.captured_cents, 0) / 100 AS paid_eur,                -- cents to euros
       coalesce(a.attempts, 0) AS attempts,
       o.placed_at,
       CAST(timezone('UTC', o.placed_at) AS DATE) AS order_date        -- the UTC day
FROM landed AS o
LEFT JOIN attempts AS a ON a.order_id = o.order_id
JOIN customers AS c ON c.customer_id = o.customer_id
ORDER BY o.order_id
"""


def order_facts(orders, payments, customers):
    """The order_facts table (see the module's docstring) from the three domains' frames."""
    dtype = orders["placed_at"].dtype   # numpy-backed (datetime64[ns, UTC]) or Arrow-backed (timestamp[us, tz=UTC])
    if getattr(dtype, "tz", None) is None and getattr(getattr(dtype, "pyarrow_dtype", None), "tz", None) is None:
        raise ValueError("orders.placed_at holds timestamps without a time zone: make them UTC, e.g. "
                         "pd.to_datetime(..., utc=True)")
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, frame in (("orders", orders), ("payments", payments), ("customers", customers)):
            con.register(name, frame)
        facts = con.sql(ORDER_FACTS).df()
    finally:
        con.close()
    facts["items"] = facts["items"].astype("int64")
    facts["attempts"] = facts["attempts"].astype("int64")
    facts["order_date"] = facts["order_date"].dt.date
    return facts
