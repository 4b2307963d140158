AUDIT (
  name refunds_are_consistent
);

-- An audit is a query for bad rows: the model fails it if any row comes back.
-- A payment is refunded exactly when it has a refund time, and a refund follows its capture.
SELECT *
FROM @this_model
WHERE (status = 'refunded') <> (refunded_at IS NOT NULL)
   OR refunded_at < captured_at
