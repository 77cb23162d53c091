-- A gateway's window ledger as of entry seq, in the decider's binary form
-- (per-key time buckets and the recent counterparties): a start reads it
-- and the entries after it, not every entry in the windows. Only the one
-- reaching furthest is kept; it can always be rebuilt from the ledger.
CREATE TABLE ledger_snapshots (
	org_id   text PRIMARY KEY REFERENCES orgs(id),
	seq      bigint NOT NULL,
	taken_at timestamptz NOT NULL,
	data     bytea NOT NULL
);
