-- Policy versions and the window ledger.
CREATE TABLE policies (
	org_id     text NOT NULL REFERENCES orgs(id),
	version    integer NOT NULL,
	source     text NOT NULL,
	digest     text NOT NULL,
	action_id  text NOT NULL DEFAULT '',
	created_by text NOT NULL,
	created    timestamptz NOT NULL,
	PRIMARY KEY (org_id, version)
);

-- One row per action that counts against rolling windows; flows as JSON.
-- Writers take the organisation's ledger lock (an advisory transaction
-- lock) before reading the tail and inserting, so seq order is commit
-- order per organisation.
CREATE TABLE ledger (
	seq          bigserial PRIMARY KEY,
	org_id       text NOT NULL REFERENCES orgs(id),
	action_id    text NOT NULL,
	principal_id text NOT NULL,
	at           timestamptz NOT NULL,
	flows        jsonb NOT NULL
);
CREATE INDEX ledger_org ON ledger (org_id, seq);
