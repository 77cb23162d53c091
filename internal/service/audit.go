package service

import (
	"context"
	"fmt"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditProof is an entry, a signed checkpoint whose tree includes it, and
// the inclusion proof (RFC 6962 audit path) that links the two.
type AuditProof struct {
	Entry      daoguard.AuditEntry
	Checkpoint []byte // the signed note
	Proof      tlog.RecordProof
}

// AuditConsistency proves that the tree of From entries is a prefix of the
// tree of To entries; Checkpoint is the latest, signed.
type AuditConsistency struct {
	From, To   int64
	Checkpoint []byte
	Proof      tlog.TreeProof
}

// Checkpoint returns the latest signed checkpoint of the audit log,
// signing one first if none covers the log yet. A log that no longer
// extends the latest checkpoint is AUDIT_TAMPERED and is not signed over.
func (s *Service) Checkpoint(ctx context.Context, principalID string) ([]byte, error) {
	if err := s.auditReader(ctx, principalID); err != nil {
		return nil, err
	}
	_, msg, err := s.checkpointCovering(ctx, 1)
	return msg, err
}

// AuditProof returns entry index with an inclusion proof against the
// latest signed checkpoint, signing a new checkpoint when the latest does
// not cover the entry yet. An entry of another organisation is NOT_FOUND,
// as a missing one.
func (s *Service) AuditProof(ctx context.Context, principalID string, index int64) (*AuditProof, error) {
	if index < 0 {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "index", "an entry index is a non-negative integer")
	}
	var e daoguard.AuditEntry
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, principalID)
		if err != nil {
			return err
		}
		es, err := tx.AuditEntries(ctx, uint64(index), 1)
		if err != nil {
			return err
		}
		if len(es) == 0 || es[0].Seq != uint64(index) || !visible(p, &es[0]) {
			return daoguard.Errorf(daoguard.CodeNotFound, "audit entry %d not found", index)
		}
		e = es[0]
		return nil
	})
	if err != nil {
		return nil, err
	}
	cp, msg, err := s.checkpointCovering(ctx, index+1)
	if err != nil {
		return nil, err
	}
	out := &AuditProof{Entry: e, Checkpoint: msg}
	err = s.Store.View(ctx, func(tx daoguard.Tx) error {
		out.Proof, err = audit.InclusionProof(ctx, tx, index, cp.Size)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AuditConsistency proves that the log of from entries, which a client
// saw signed earlier, is a prefix of the log of to entries (0: of the
// latest checkpoint's size), which must be a signed size too for the
// client to hold its root. The latest checkpoint comes with the proof.
func (s *Service) AuditConsistency(ctx context.Context, principalID string, from, to int64) (*AuditConsistency, error) {
	if from < 1 {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "from", "from is the size of an earlier checkpoint: a positive integer")
	}
	if to != 0 && to < from {
		return nil, daoguard.FieldError(daoguard.CodeInvalid, "to", "to is the size of a later checkpoint: at least from")
	}
	if err := s.auditReader(ctx, principalID); err != nil {
		return nil, err
	}
	cp, msg, err := s.checkpointCovering(ctx, max(from, to))
	if err != nil {
		return nil, err
	}
	if to == 0 {
		to = cp.Size
	}
	out := &AuditConsistency{From: from, To: to, Checkpoint: msg}
	err = s.Store.View(ctx, func(tx daoguard.Tx) error {
		out.Proof, err = audit.ConsistencyProof(ctx, tx, from, to)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditReader checks that the principal exists (the edge has checked its
// scope).
func (s *Service) auditReader(ctx context.Context, principalID string) error {
	return s.Store.View(ctx, func(tx daoguard.Tx) error {
		_, err := tx.Principal(ctx, principalID)
		return err
	})
}

// visible reports whether p may read e: entries of p's organisation, and,
// for humans, entries of none (refused anonymous requests).
func visible(p *daoguard.Principal, e *daoguard.AuditEntry) bool {
	return e.OrgID == p.OrgID || (e.OrgID == "" && p.IsHuman())
}

// SignCheckpoint signs a checkpoint of the log as it is now, if it grew
// since the latest one and still extends it (see audit.IssueCheckpoint),
// and hands a new one to Published. It returns the latest checkpoint and
// its note; none for an empty log.
func (s *Service) SignCheckpoint(ctx context.Context) (audit.Checkpoint, []byte, error) {
	if s.AuditSigner == nil || s.AuditVerifier == nil {
		return audit.Checkpoint{}, nil, errNoAuditKey
	}
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	return s.signCheckpoint(ctx)
}

// signCheckpoint is SignCheckpoint under ckMu.
func (s *Service) signCheckpoint(ctx context.Context) (audit.Checkpoint, []byte, error) {
	before, _, err := s.LatestCheckpoint(ctx)
	if err != nil {
		return audit.Checkpoint{}, nil, err
	}
	c, msg, err := audit.IssueCheckpoint(ctx, s.Store, s.AuditSigner, s.AuditVerifier)
	if err != nil {
		return audit.Checkpoint{}, nil, tampered(err)
	}
	if msg != nil && c.Size > before.Size && s.Published != nil {
		s.Published(ctx, msg)
	}
	return c, msg, nil
}

// LatestCheckpoint reads and verifies the latest stored checkpoint; the
// zero Checkpoint and a nil note if there is none.
func (s *Service) LatestCheckpoint(ctx context.Context) (c audit.Checkpoint, msg []byte, err error) {
	err = s.Store.View(ctx, func(tx daoguard.Tx) error {
		c, msg, err = audit.LatestCheckpoint(ctx, tx, s.AuditVerifier)
		return err
	})
	return c, msg, tampered(err)
}

// checkpointCovering returns a signed checkpoint of at least size entries:
// the latest, or, when it is smaller, a new one. Callers queue on one
// mutex, so a burst of proof requests signs once, not once each.
func (s *Service) checkpointCovering(ctx context.Context, size int64) (audit.Checkpoint, []byte, error) {
	if s.AuditSigner == nil || s.AuditVerifier == nil {
		return audit.Checkpoint{}, nil, errNoAuditKey
	}
	if c, msg, err := s.LatestCheckpoint(ctx); err != nil || c.Size >= size {
		return c, msg, err
	}
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	if c, msg, err := s.LatestCheckpoint(ctx); err != nil || c.Size >= size { // signed while we queued
		return c, msg, err
	}
	c, msg, err := s.signCheckpoint(ctx)
	if err != nil {
		return audit.Checkpoint{}, nil, err
	}
	if c.Size < size {
		return audit.Checkpoint{}, nil, daoguard.Errorf(daoguard.CodeNotFound, "the audit log has %d entries", c.Size)
	}
	return c, msg, nil
}

// Extends checks that the signed checkpoint newer extends older: both
// are the log's, and the stored tree proves the older a prefix of the
// newer (RFC 6962 consistency). A publisher checks this before replacing
// a checkpoint others may already hold.
func (s *Service) Extends(ctx context.Context, older, newer []byte) error {
	if s.AuditVerifier == nil {
		return errNoAuditKey
	}
	o, err := audit.OpenCheckpoint(older, s.AuditVerifier)
	if err != nil {
		return fmt.Errorf("the older checkpoint: %w", err)
	}
	n, err := audit.OpenCheckpoint(newer, s.AuditVerifier)
	if err != nil {
		return fmt.Errorf("the newer checkpoint: %w", err)
	}
	if n.Size < o.Size || n.Size == o.Size && n.Root != o.Root {
		return fmt.Errorf("a checkpoint of %d entries cannot extend one of %d", n.Size, o.Size)
	}
	var proof tlog.TreeProof
	err = s.Store.View(ctx, func(tx daoguard.Tx) error {
		proof, err = audit.ConsistencyProof(ctx, tx, o.Size, n.Size)
		return err
	})
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, n.Size, n.Root, o.Size, o.Root); err != nil {
		return fmt.Errorf("the log of %d entries is not an extension of the one of %d", n.Size, o.Size)
	}
	return nil
}

// errNoAuditKey: the service was given no checkpoint key.
var errNoAuditKey = &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "this server has no audit signing key", Hint: "serve reads it from audit_key_file"}

// tampered turns a TamperError into AUDIT_TAMPERED; other errors pass.
func tampered(err error) error {
	return audit.Tampered(err, "an operator should run daoguard audit verify")
}
