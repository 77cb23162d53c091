-- daoguard schema v1 (PostgreSQL).
CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE orgs (
	id        text PRIMARY KEY,
	name      text NOT NULL,
	paused    boolean NOT NULL DEFAULT false,
	paused_by text NOT NULL DEFAULT '',
	paused_at timestamptz,
	created   timestamptz NOT NULL
);

CREATE TABLE principals (
	id       text PRIMARY KEY,
	org_id   text NOT NULL REFERENCES orgs(id),
	kind     text NOT NULL CHECK (kind IN ('agent', 'human')),
	name     text NOT NULL,
	roles    text NOT NULL,
	autonomy text NOT NULL,
	created  timestamptz NOT NULL,
	updated  timestamptz NOT NULL
);

CREATE TABLE credentials (
	key_id        text PRIMARY KEY,
	principal_id  text NOT NULL REFERENCES principals(id),
	alg           text NOT NULL CHECK (alg IN ('ed25519', 'hmac-sha256')),
	public_key    bytea,
	sealed_secret bytea,
	scopes        text NOT NULL,
	environment   text NOT NULL CHECK (environment IN ('test', 'live')),
	created       timestamptz NOT NULL,
	expires_at    timestamptz,
	revoked_at    timestamptz
);

CREATE TABLE accounts (
	org_id   text NOT NULL REFERENCES orgs(id),
	name     text NOT NULL,
	chain_id bigint NOT NULL,
	address  text NOT NULL,
	kind     text NOT NULL CHECK (kind IN ('wallet', 'safe')),
	PRIMARY KEY (org_id, name)
);

CREATE TABLE assets (
	org_id   text NOT NULL REFERENCES orgs(id),
	symbol   text NOT NULL,
	chain_id bigint NOT NULL,
	address  text NOT NULL,
	decimals integer NOT NULL,
	PRIMARY KEY (org_id, symbol)
);

CREATE TABLE actions (
	id              text PRIMARY KEY,
	org_id          text NOT NULL REFERENCES orgs(id),
	principal_id    text NOT NULL REFERENCES principals(id),
	idempotency_key text,
	request_hash    text NOT NULL,
	state           text NOT NULL,
	intent          text NOT NULL,
	decoded         text NOT NULL,
	decision        text NOT NULL,
	runnable_at     timestamptz,
	expires_at      timestamptz,
	attempt         text NOT NULL DEFAULT '',
	lease_owner     text NOT NULL DEFAULT '',
	lease_until     timestamptz,
	result          text,
	version         bigint NOT NULL,
	created         timestamptz NOT NULL,
	updated         timestamptz NOT NULL,
	UNIQUE (principal_id, idempotency_key)
) WITH (fillfactor = 80); -- room on each page for HOT updates: an action is updated several times
CREATE INDEX actions_state_runnable ON actions (state, runnable_at);
CREATE INDEX actions_state_expires ON actions (state, expires_at);
CREATE INDEX actions_org ON actions (org_id, id);

CREATE TABLE approvals (
	action_id    text NOT NULL REFERENCES actions(id),
	principal_id text NOT NULL REFERENCES principals(id),
	approve      boolean NOT NULL,
	signature    text NOT NULL,
	comment      text NOT NULL,
	created      timestamptz NOT NULL,
	PRIMARY KEY (action_id, principal_id)
);

-- audit_head holds the next audit position. Each transaction that appends
-- locks it as its last step, so positions are dense and follow commit order
-- across every gateway process sharing the database.
CREATE TABLE audit_head (
	id   boolean PRIMARY KEY DEFAULT true CHECK (id),
	next bigint NOT NULL
);
INSERT INTO audit_head (next) VALUES (0);

CREATE TABLE audit (
	seq        bigint PRIMARY KEY,
	time       timestamptz NOT NULL,
	org_id     text NOT NULL,
	actor_id   text NOT NULL,
	actor_kind text NOT NULL,
	action_id  text NOT NULL,
	event      text NOT NULL,
	detail     text
);

-- The audit log is append-only: the code has no update or delete path, and
-- the database refuses one too (also TRUNCATE).
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only';
END $$;
CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
