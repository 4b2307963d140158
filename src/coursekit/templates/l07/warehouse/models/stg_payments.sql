MODEL (
  name brightcart.stg_payments,
  kind FULL,
  grain payment_id,
  description 'Payments that took money: captured, or captured and later refunded (amounts in cents).',
  audits (
    not_null(columns := (payment_id, order_id, amount_cents, captured_at)),
    unique_values(columns := (payment_id)),
    refunds_are_consistent
  )
);

SELECT
  payment_id,
  order_id,
  status,
  amount_cents,
  created_at AS captured_at,
  refunded_at
FROM raw.payments
WHERE status IN ('captured', 'refunded')
