-- What each action that may still move funds holds of its account's
-- balances (the exposure bound): one row per action and asset, deleted when
-- the action ends without moving funds, marked settled when it executes.
CREATE TABLE reservations (
	org_id    TEXT NOT NULL REFERENCES orgs(id),
	action_id TEXT NOT NULL,
	account   TEXT NOT NULL,
	asset     TEXT NOT NULL,
	amount    TEXT NOT NULL,
	usd       INTEGER NOT NULL,
	settled   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (action_id, asset)
);
CREATE INDEX reservations_account ON reservations (org_id, account);
CREATE INDEX reservations_settled ON reservations (settled);

-- Each agent's running statistics for the anomaly breaker (a few KB,
-- whatever the history), read and written by every decision on the agent.
CREATE TABLE agent_stats (
	principal_id TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL REFERENCES orgs(id),
	stats        BLOB NOT NULL
);

-- Whom each window entry counts for beyond its principal: all agents
-- together, and each of its roles (JSON list), for the ceilings.
ALTER TABLE ledger ADD COLUMN agent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN roles TEXT NOT NULL DEFAULT '';
-- Entries written before: the principal's kind and roles as they are now.
UPDATE ledger SET
	agent = COALESCE((SELECT p.kind = 'agent' FROM principals p WHERE p.id = ledger.principal_id), 0),
	roles = COALESCE((SELECT p.roles FROM principals p WHERE p.id = ledger.principal_id), '');
