package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/daoguard/daoguard"
)

// runChainStore: signers and broadcasts are kept exactly, a name or an
// attempt is taken once, and two writers can never record the same nonce of
// a sender, also from two store instances at once.
func runChainStore(t *testing.T, h Harness) {
	ctx := context.Background()
	t.Run("OK_Signer", func(t *testing.T) {
		f := setup(t, h)
		s := &daoguard.Signer{OrgID: f.Org, Name: "ops", Address: "0xAbC0000000000000000000000000000000000001", SealedKey: []byte{1, 2, 3}}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddSigner(ctx, s) }))
		err := f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return tx.AddSigner(ctx, &daoguard.Signer{OrgID: f.Org, Name: "ops", Address: "0x01", SealedKey: []byte{9}})
		})
		if daoguard.ErrorCode(err) != daoguard.CodeConflict {
			t.Fatalf("second signer named ops: %v", err)
		}
		var got *daoguard.Signer
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Signer(ctx, f.Org, "ops"); return err }))
		if got.Address != s.Address || !bytes.Equal(got.SealedKey, s.SealedKey) || !got.Created.Equal(s.Created) || s.Created.IsZero() {
			t.Fatalf("got %+v, stored %+v", got, s)
		}
		err = f.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.Signer(ctx, f.Org, "nobody"); return err })
		if !daoguard.IsNotFound(err) {
			t.Fatalf("unknown signer: %v", err)
		}
	})
	t.Run("OK_Broadcast", func(t *testing.T) {
		f := setup(t, h)
		next := func() uint64 {
			var n uint64
			must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { n, err = tx.NextNonce(ctx, 1337, "0xaa"); return err }))
			return n
		}
		if n := next(); n != 0 {
			t.Fatalf("next nonce of a new sender: %d", n)
		}
		b := &daoguard.Broadcast{Attempt: "att_1", ActionID: "act_1", ChainID: 1337, Sender: "0xaa", Nonce: 7, TxHash: "0x01", Raw: []byte{0xf8, 1}}
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddBroadcast(ctx, b) }))
		if n := next(); n != 8 {
			t.Fatalf("next nonce %d, want 8", n)
		}
		for _, dup := range []*daoguard.Broadcast{
			{Attempt: "att_1", ActionID: "act_1", ChainID: 1337, Sender: "0xaa", Nonce: 8, TxHash: "0x02", Raw: []byte{2}}, // the attempt again
			{Attempt: "att_2", ActionID: "act_2", ChainID: 1337, Sender: "0xaa", Nonce: 7, TxHash: "0x03", Raw: []byte{3}}, // the nonce again
		} {
			err := f.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.AddBroadcast(ctx, dup) })
			if daoguard.ErrorCode(err) != daoguard.CodeConflict {
				t.Fatalf("%+v: %v", dup, err)
			}
		}
		// Another chain or sender has nonces of its own.
		must[struct{}](t)(struct{}{}, f.Store.Update(ctx, func(tx daoguard.Tx) error {
			return tx.AddBroadcast(ctx, &daoguard.Broadcast{Attempt: "att_3", ActionID: "act_3", ChainID: 1, Sender: "0xaa", Nonce: 7, TxHash: "0x04", Raw: []byte{4}})
		}))
		var got *daoguard.Broadcast
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { got, err = tx.Broadcast(ctx, "att_1"); return err }))
		if got.TxHash != "0x01" || got.Nonce != 7 || got.ChainID != 1337 || !bytes.Equal(got.Raw, b.Raw) || got.ActionID != "act_1" || !got.Created.Equal(b.Created) {
			t.Fatalf("got %+v", got)
		}
		if n := next(); n != 8 {
			t.Fatalf("next nonce %d after refused duplicates, want 8", n)
		}
		err := f.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.Broadcast(ctx, "att_none"); return err })
		if !daoguard.IsNotFound(err) {
			t.Fatalf("unknown attempt: %v", err)
		}
	})
	t.Run("OK_NonceRace", func(t *testing.T) {
		// Writers that each read the next nonce and record it: every
		// nonce is recorded once, whoever loses retries with the next.
		f := setup(t, h)
		other, err := h.Open(f.DSN, f.Clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		stores := []daoguard.Store{f.Store, other}
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := stores[i%2]
				for {
					err := st.Update(ctx, func(tx daoguard.Tx) error {
						next, err := tx.NextNonce(ctx, 1337, "0xbb")
						if err != nil {
							return err
						}
						return tx.AddBroadcast(ctx, &daoguard.Broadcast{Attempt: "att_r" + string(rune('a'+i)), ActionID: "act", ChainID: 1337, Sender: "0xbb", Nonce: next, TxHash: "0x", Raw: []byte{1}})
					})
					if daoguard.ErrorCode(err) == daoguard.CodeConflict {
						continue
					}
					errs <- err
					return
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var next uint64
		must[struct{}](t)(struct{}{}, f.Store.View(ctx, func(tx daoguard.Tx) (err error) { next, err = tx.NextNonce(ctx, 1337, "0xbb"); return err }))
		if next != n {
			t.Fatalf("%d writers recorded nonces up to %d", n, next)
		}
	})
}
