package audit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/sqlite"
	"github.com/daoguard/daoguard/internal/storetest"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// TestProofsVerifyIndependently: inclusion and consistency proofs read from
// a real store's tree verify with transparency-dev/merkle, an RFC 6962
// implementation that shares no code with tlog, against the roots of
// signed checkpoints.
func TestProofsVerifyIndependently(t *testing.T) {
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := storetest.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "daoguard/org_test")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	var cps []audit.Checkpoint
	for round := range 5 {
		for i := range 1 + round*7 {
			err := db.Update(ctx, func(tx daoguard.Tx) error {
				return tx.Append(ctx, &daoguard.AuditEntry{OrgID: "org_test", ActorID: "x", ActorKind: "system", Event: "e", Detail: []byte(fmt.Sprintf(`{"r":%d,"i":%d}`, round, i))})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		cp, _, err := audit.IssueCheckpoint(ctx, db, s, v)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	var es []daoguard.AuditEntry
	db.View(ctx, func(tx daoguard.Tx) (err error) { es, err = tx.AuditEntries(ctx, 0, 1000); return err })
	h := rfc6962.DefaultHasher
	err := db.View(ctx, func(tx daoguard.Tx) error {
		for _, cp := range cps {
			for i := int64(0); i < cp.Size; i++ {
				p, err := audit.InclusionProof(ctx, tx, i, cp.Size)
				if err != nil {
					return err
				}
				if err := proof.VerifyInclusion(h, uint64(i), uint64(cp.Size), h.HashLeaf(audit.Leaf(&es[i])), toBytes(p), cp.Root[:]); err != nil {
					return fmt.Errorf("inclusion of %d in %d: %w", i, cp.Size, err)
				}
				// The proof of one entry is no proof of its neighbour.
				if i+1 < cp.Size {
					if proof.VerifyInclusion(h, uint64(i), uint64(cp.Size), h.HashLeaf(audit.Leaf(&es[i+1])), toBytes(p), cp.Root[:]) == nil {
						return fmt.Errorf("entry %d proved at %d", i+1, i)
					}
				}
			}
		}
		for i := range cps {
			for j := i + 1; j < len(cps); j++ {
				p, err := audit.ConsistencyProof(ctx, tx, cps[i].Size, cps[j].Size)
				if err != nil {
					return err
				}
				if err := proof.VerifyConsistency(h, uint64(cps[i].Size), uint64(cps[j].Size), toBytes(p), cps[i].Root[:], cps[j].Root[:]); err != nil {
					return fmt.Errorf("consistency %d → %d: %w", cps[i].Size, cps[j].Size, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func toBytes[H ~[32]byte](p []H) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}
