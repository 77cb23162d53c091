-- The audit log's Merkle tree (RFC 6962, golang.org/x/mod/sumdb/tlog's
-- stored-hash layout): written in the same transaction as the entries it
-- hashes, under the audit head's lock, and append-only like them.
CREATE TABLE audit_hash (
	idx  bigint PRIMARY KEY,
	hash bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE TRIGGER audit_hash_append_only BEFORE UPDATE OR DELETE ON audit_hash
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hash_no_truncate BEFORE TRUNCATE ON audit_hash
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Set by the store once the tree holds every entry written before it (the
-- upgrade backfill runs once, never again: deleting hashes later must not
-- make the store rebuild them from tampered entries).
INSERT INTO meta (key, value) VALUES ('audit_tree', 'pending');

-- Signed checkpoints of the log (C2SP tlog-checkpoint notes), one per size.
CREATE TABLE audit_checkpoint (
	size    bigint PRIMARY KEY,
	note    text NOT NULL,
	created timestamptz NOT NULL
);
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Positions are 0, 1, 2, …: a row at a negative one would sit outside
-- what verification reads.
ALTER TABLE audit ADD CONSTRAINT audit_seq_not_negative CHECK (seq >= 0);
