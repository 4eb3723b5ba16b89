-- billing.claims.batch_id names the batch a claim went out in. It is set
-- only by the transaction that writes the batch (billing_batch.c: the
-- claims, then the batch row, committed together) and batches are never
-- deleted (the service may only insert and read them), so the foreign key
-- to billing.batches could never fail; what it did cost was a lookup of
-- the batch per claim at commit, deferred: 0.4 to 0.5 s of a batch of
-- 50,000 claims on this 2-core machine. It goes, like the key to
-- encounters that the table never had (009).
ALTER TABLE billing.claims DROP CONSTRAINT claims_batch_id_fkey;
