-- Which principal an audit entry is about (an agent whose autonomy
-- changed, whose alignment probes ran): the index behind an agent's risk
-- history. Not part of the hashed entry: losing or forging a row here
-- hides or invents nothing the log's proofs vouch for.
CREATE TABLE audit_subject (
    subject text NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (subject, seq)
);

-- The autonomy changes already in the log, so that an agent's history
-- starts with its first.
INSERT INTO audit_subject (subject, seq)
SELECT detail::jsonb->>'agent', seq FROM audit
WHERE event = 'principal.autonomy' AND detail::jsonb->>'agent' IS NOT NULL;
