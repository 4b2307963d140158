MODEL (
  name brightcart.daily_revenue,
  kind FULL,
  grain (day, region),
  description 'Net revenue in EUR per UTC day and region: captures count on their day, refunds on theirs.',
  audits (
    not_null(columns := (day, region, revenue_eur)),
    unique_combination_of_columns(columns := (day, region))
  )
);

WITH movements AS (
  SELECT order_id, captured_at AS at, amount_cents AS cents
  FROM brightcart.stg_payments
  UNION ALL
  SELECT order_id, refunded_at AS at, -amount_cents AS cents
  FROM brightcart.stg_payments
  WHERE status = 'refunded'
)
SELECT
  CAST(m.at AT TIME ZONE 'UTC' AS DATE) AS day,
  o.region,
  SUM(m.cents) / 100 AS revenue_eur
FROM movements AS m
JOIN brightcart.stg_orders AS o
  ON o.order_id = m.order_id
GROUP BY CAST(m.at AT TIME ZONE 'UTC' AS DATE), o.region
