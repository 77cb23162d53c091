-- What each action that may still move funds holds of its account's
-- balances (the exposure bound): one row per action and asset, deleted when
-- the action ends without moving funds, marked settled when it executes.
-- Written and read by decisions under the organisation's ledger lock.
CREATE TABLE reservations (
	org_id    text NOT NULL REFERENCES orgs(id),
	action_id text NOT NULL,
	account   text NOT NULL,
	asset     text NOT NULL,
	amount    numeric(78, 0) NOT NULL,
	usd       bigint NOT NULL,
	settled   timestamptz,
	PRIMARY KEY (action_id, asset)
);
CREATE INDEX reservations_account ON reservations (org_id, account);
CREATE INDEX reservations_settled ON reservations (settled);

-- Each agent's running statistics for the anomaly breaker (a few KB,
-- whatever the history), read and written by every decision on the agent
-- under the organisation's ledger lock.
CREATE TABLE agent_stats (
	principal_id text PRIMARY KEY,
	org_id       text NOT NULL REFERENCES orgs(id),
	stats        bytea NOT NULL
);

-- Whom each window entry counts for beyond its principal: all agents
-- together, and each of its roles (JSON list), for the ceilings.
ALTER TABLE ledger ADD COLUMN agent boolean NOT NULL DEFAULT false;
ALTER TABLE ledger ADD COLUMN roles text NOT NULL DEFAULT '';
-- Entries written before: the principal's kind and roles as they are now.
UPDATE ledger l SET agent = (p.kind = 'agent'), roles = p.roles FROM principals p WHERE p.id = l.principal_id;
