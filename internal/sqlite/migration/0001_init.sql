-- daoguard schema v1 (SQLite). Times are UTC Unix microseconds.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE orgs (
	id        TEXT PRIMARY KEY,
	name      TEXT NOT NULL,
	paused    INTEGER NOT NULL DEFAULT 0,
	paused_by TEXT NOT NULL DEFAULT '',
	paused_at INTEGER NOT NULL DEFAULT 0,
	created   INTEGER NOT NULL
);

CREATE TABLE principals (
	id       TEXT PRIMARY KEY,
	org_id   TEXT NOT NULL REFERENCES orgs(id),
	kind     TEXT NOT NULL CHECK (kind IN ('agent', 'human')),
	name     TEXT NOT NULL,
	roles    TEXT NOT NULL,
	autonomy TEXT NOT NULL,
	created  INTEGER NOT NULL,
	updated  INTEGER NOT NULL
);

CREATE TABLE credentials (
	key_id        TEXT PRIMARY KEY,
	principal_id  TEXT NOT NULL REFERENCES principals(id),
	alg           TEXT NOT NULL CHECK (alg IN ('ed25519', 'hmac-sha256')),
	public_key    BLOB,
	sealed_secret BLOB,
	scopes        TEXT NOT NULL,
	environment   TEXT NOT NULL CHECK (environment IN ('test', 'live')),
	created       INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL DEFAULT 0,
	revoked_at    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE accounts (
	org_id   TEXT NOT NULL REFERENCES orgs(id),
	name     TEXT NOT NULL,
	chain_id INTEGER NOT NULL,
	address  TEXT NOT NULL,
	kind     TEXT NOT NULL CHECK (kind IN ('wallet', 'safe')),
	PRIMARY KEY (org_id, name)
);

CREATE TABLE assets (
	org_id   TEXT NOT NULL REFERENCES orgs(id),
	symbol   TEXT NOT NULL,
	chain_id INTEGER NOT NULL,
	address  TEXT NOT NULL,
	decimals INTEGER NOT NULL,
	PRIMARY KEY (org_id, symbol)
);

CREATE TABLE actions (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL REFERENCES orgs(id),
	principal_id    TEXT NOT NULL REFERENCES principals(id),
	idempotency_key TEXT,
	request_hash    TEXT NOT NULL,
	state           TEXT NOT NULL,
	intent          TEXT NOT NULL,
	decoded         TEXT NOT NULL,
	decision        TEXT NOT NULL,
	runnable_at     INTEGER NOT NULL DEFAULT 0,
	expires_at      INTEGER NOT NULL DEFAULT 0,
	attempt         TEXT NOT NULL DEFAULT '',
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	result          TEXT,
	version         INTEGER NOT NULL,
	created         INTEGER NOT NULL,
	updated         INTEGER NOT NULL,
	UNIQUE (principal_id, idempotency_key)
);
CREATE INDEX actions_state_runnable ON actions (state, runnable_at);
CREATE INDEX actions_state_expires ON actions (state, expires_at);
CREATE INDEX actions_org ON actions (org_id, id);

CREATE TABLE approvals (
	action_id    TEXT NOT NULL REFERENCES actions(id),
	principal_id TEXT NOT NULL REFERENCES principals(id),
	approve      INTEGER NOT NULL,
	signature    TEXT NOT NULL,
	comment      TEXT NOT NULL,
	created      INTEGER NOT NULL,
	PRIMARY KEY (action_id, principal_id)
);

CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	org_id     TEXT NOT NULL,
	actor_id   TEXT NOT NULL,
	actor_kind TEXT NOT NULL,
	action_id  TEXT NOT NULL,
	event      TEXT NOT NULL,
	detail     TEXT
);

-- The audit log is append-only: the code has no update or delete path, and
-- the database refuses one too.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
