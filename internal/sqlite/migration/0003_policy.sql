-- Policy versions and the window ledger.
CREATE TABLE policies (
	org_id    TEXT NOT NULL REFERENCES orgs(id),
	version   INTEGER NOT NULL,
	source    TEXT NOT NULL,
	digest    TEXT NOT NULL,
	action_id TEXT NOT NULL DEFAULT '',
	created_by TEXT NOT NULL,
	created   INTEGER NOT NULL,
	PRIMARY KEY (org_id, version)
);

-- One row per action that counts against rolling windows; flows as JSON.
-- seq increases in commit order (one writer).
CREATE TABLE ledger (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id       TEXT NOT NULL REFERENCES orgs(id),
	action_id    TEXT NOT NULL,
	principal_id TEXT NOT NULL,
	at           INTEGER NOT NULL,
	flows        TEXT NOT NULL
);
CREATE INDEX ledger_org ON ledger (org_id, seq);
