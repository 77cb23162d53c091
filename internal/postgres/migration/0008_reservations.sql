-- What each action that may still move funds holds of its account's
-- balances (the exposure bound): one row per action and asset, deleted when
-- the action ends (its amount then leaves reserved_open, and moves to
-- reserved_settled if it executed).
-- Written and read by decisions under the organisation's ledger lock.
CREATE TABLE reservations (
	org_id    text NOT NULL REFERENCES orgs(id),
	action_id text NOT NULL,
	account   text NOT NULL,
	asset     text NOT NULL,
	amount    numeric(78, 0) NOT NULL,
	usd       bigint NOT NULL,
	PRIMARY KEY (action_id, asset)
);
-- What the open reservations of an account hold, per asset: read by every
-- decision in one lookup, whatever the number of open actions.
CREATE TABLE reserved_open (
	org_id  text NOT NULL REFERENCES orgs(id),
	account text NOT NULL,
	asset   text NOT NULL,
	amount  numeric(78, 0) NOT NULL,
	PRIMARY KEY (org_id, account, asset)
);
-- What executed actions moved, per second of settlement: counted against
-- holdings snapshots read before then; kept an hour.
CREATE TABLE reserved_settled (
	org_id  text NOT NULL REFERENCES orgs(id),
	account text NOT NULL,
	asset   text NOT NULL,
	second  bigint NOT NULL,
	amount  numeric(78, 0) NOT NULL,
	PRIMARY KEY (org_id, account, second, asset)
);
CREATE INDEX reserved_settled_second ON reserved_settled (second);

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

-- What each action does, as a column: daoguard's own actions (policy
-- changes, controls) are found by kind, not by reading every queued one.
ALTER TABLE actions ADD COLUMN kind text NOT NULL DEFAULT '';
UPDATE actions SET kind = COALESCE(decoded::jsonb ->> 'kind', '');
CREATE INDEX actions_state_kind ON actions (state, kind, runnable_at);
