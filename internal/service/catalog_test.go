package service_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/ethereum/go-ethereum/common"
)

// TestCatalogChanges: the operator adds accounts and assets; a bad one is
// refused with its code and field and changes nothing; an existing one
// changes only when asked to; every change is audited with what it was.
func TestCatalogChanges(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, fixed{})
	const org = "org_test"
	safe := common.HexToAddress("0x5afe00000000000000000000000000000000cafe").Hex() // EIP-55
	// One letter's case flipped: the checksum fails.
	flipped := []byte(safe)
	for i := 2; i < len(flipped); i++ {
		if c := flipped[i]; c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			flipped[i] ^= 0x20
			break
		}
	}
	acct := func(name, addr string, k daoguard.AccountKind) *daoguard.Account {
		return &daoguard.Account{OrgID: org, Name: name, ChainID: 1337, Address: addr, Kind: k}
	}
	asset := func(sym, addr string, dec int) *daoguard.Asset {
		return &daoguard.Asset{OrgID: org, Symbol: sym, ChainID: 1337, Address: addr, Decimals: dec}
	}
	audit := func() (es []daoguard.AuditEntry) {
		err := svc.Store.View(ctx, func(tx daoguard.Tx) (err error) { es, err = tx.AuditEntries(ctx, 0, 10000); return err })
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	entries := func() int { return len(audit()) }
	before := entries()
	for _, tc := range []struct {
		name  string
		err   error
		code  daoguard.Code
		field string
	}{
		{"ErrAccountName", svc.AddAccount(ctx, acct("Vault!", safe, daoguard.AccountSafe), false), daoguard.CodeInvalid, "name"},
		{"ErrAccountKind", svc.AddAccount(ctx, acct("vault", safe, 0), false), daoguard.CodeInvalid, "kind"},
		{"ErrAccountChain", svc.AddAccount(ctx, &daoguard.Account{OrgID: org, Name: "vault", Address: safe, Kind: daoguard.AccountSafe}, false), daoguard.CodeInvalid, "chain_id"},
		{"ErrAccountAddress", svc.AddAccount(ctx, acct("vault", "0x1234", daoguard.AccountSafe), false), daoguard.CodeInvalid, "address"},
		{"ErrAccountChecksum", svc.AddAccount(ctx, acct("vault", string(flipped), daoguard.AccountSafe), false), daoguard.CodeAddressChecksum, "address"},
		{"ErrAccountExists", svc.AddAccount(ctx, acct("treasury", safe, daoguard.AccountSafe), false), daoguard.CodeConflict, "name"},
		{"ErrAccountAddressTaken", svc.AddAccount(ctx, acct("vault", "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", daoguard.AccountSafe), false), daoguard.CodeConflict, "address"},
		{"ErrAssetSymbol", svc.AddAsset(ctx, asset("US DC", "", 6), false), daoguard.CodeInvalid, "symbol"},
		{"ErrAssetDecimals", svc.AddAsset(ctx, asset("DAI", "0xdddddddddddddddddddddddddddddddddddddddd", 78), false), daoguard.CodeInvalid, "decimals"},
		{"ErrAssetAddress", svc.AddAsset(ctx, asset("DAI", "dddd", 18), false), daoguard.CodeInvalid, "address"},
		{"ErrAssetExists", svc.AddAsset(ctx, asset("USDC", "0xdddddddddddddddddddddddddddddddddddddddd", 6), false), daoguard.CodeConflict, "symbol"},
		{"ErrSecondNative", svc.AddAsset(ctx, asset("WEI", "", 18), false), daoguard.CodeConflict, "address"},
		{"ErrAccountOtherChain", svc.AddAccount(ctx, &daoguard.Account{OrgID: org, Name: "vault", ChainID: 100, Address: safe, Kind: daoguard.AccountSafe}, false), daoguard.CodeConflict, "chain_id"},
		{"ErrAssetOtherChain", svc.AddAsset(ctx, &daoguard.Asset{OrgID: org, Symbol: "XDAI", ChainID: 100, Decimals: 18}, false), daoguard.CodeConflict, "chain_id"},
		{"ErrTokenAddressTaken", svc.AddAsset(ctx, asset("USDC2", "0xCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", 6), false), daoguard.CodeConflict, "address"},
	} {
		var e *daoguard.Error
		if tc.err == nil || daoguard.ErrorCode(tc.err) != tc.code || !asError(tc.err, &e) || e.Field != tc.field {
			t.Errorf("%s: %v (field %v), want %s on %s", tc.name, tc.err, e, tc.code, tc.field)
		}
	}
	if n := entries(); n != before {
		t.Fatalf("refusals wrote %d audit entries", n-before)
	}

	if err := svc.AddAccount(ctx, acct("vault", "0x5afe00000000000000000000000000000000cafe", daoguard.AccountSafe), false); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddAccount(ctx, acct("treasury", "0x5afe00000000000000000000000000000000caff", daoguard.AccountSafe), true); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddAsset(ctx, asset("DAI", "0xDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", 18), false); err != nil {
		t.Fatal(err)
	}
	err := svc.Store.View(ctx, func(tx daoguard.Tx) error {
		v, err := tx.Account(ctx, org, "vault")
		if err != nil || v.Address != safe { // kept EIP-55
			t.Errorf("vault %+v %v", v, err)
		}
		d, err := tx.Asset(ctx, org, "DAI")
		if err != nil || d.Address != "0xdddddddddddddddddddddddddddddddddddddddd" {
			t.Errorf("DAI %+v %v", d, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	es := audit()
	got := es[len(es)-3:]
	if got[0].Event != "account.added" || got[1].Event != "account.replaced" || got[2].Event != "asset.added" || got[0].ActorID != "operator" {
		t.Fatalf("%+v", got)
	}
	var detail struct {
		Was daoguard.Account `json:"was"`
	}
	if json.Unmarshal(got[1].Detail, &detail); detail.Was.Address != "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" {
		t.Fatalf("the replacement does not say what it replaced: %s", got[1].Detail)
	}
}

func asError(err error, e **daoguard.Error) bool {
	x, ok := err.(*daoguard.Error)
	*e = x
	return ok
}
