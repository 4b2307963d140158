MODEL (
  name brightcart.stg_orders,
  kind FULL,
  grain order_id,
  description 'One row per order placed, with the region it ships to.',
  audits (
    not_null(columns := (order_id, region)),
    unique_values(columns := (order_id)),
    accepted_values(column := region, is_in := ('north', 'south', 'east', 'west', 'central'))
  )
);

SELECT
  order_id,
  customer_id,
  region,
  placed_at
FROM raw.orders
