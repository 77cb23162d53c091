package secrets

import (
	"bytes"
	"testing"

	"github.com/daoguard/daoguard"
)

func testKeyring(t testing.TB) *Keyring {
	k, err := ParseKeyring(NewKeyringFile())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKeyring(t)
	secret, ad := []byte("a 32-byte shared secret, really"), []byte("credentials.sealed_secret:dg_test_x")
	sealed, err := k.Seal(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("plaintext visible in the sealed blob")
	}
	got, err := k.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := k.Seal(secret, ad)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one secret are equal: nonces or data keys are reused")
	}

	t.Run("ErrOtherRow", func(t *testing.T) {
		if _, err := k.Open(sealed, []byte("credentials.sealed_secret:dg_test_y")); err == nil {
			t.Fatal("a blob opened under another row's associated data")
		}
	})
	t.Run("ErrEveryByteFlipped", func(t *testing.T) {
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 1
			if _, err := k.Open(bad, ad); err == nil {
				t.Fatalf("flipping byte %d went unnoticed", i)
			}
		}
	})
	t.Run("ErrTruncated", func(t *testing.T) {
		for _, n := range []int{0, 1, 5, sealedPrefix, len(sealed) - 1} {
			if _, err := k.Open(sealed[:n], ad); err == nil {
				t.Fatalf("a blob truncated to %d bytes opened", n)
			}
		}
	})
	t.Run("ErrOtherKeyring", func(t *testing.T) {
		if _, err := testKeyring(t).Open(sealed, ad); err == nil {
			t.Fatal("another master key opened the blob")
		}
	})
}

func TestRotateMaster(t *testing.T) {
	k1 := testKeyring(t)
	ad := []byte("credentials.sealed_secret:k")
	old, _ := k1.Seal([]byte("s1"), ad)

	text, k2 := k1.WithNewVersion()
	if k2.Current() != 2 || k2.Versions() != 2 {
		t.Fatalf("new keyring: current %d, %d versions", k2.Current(), k2.Versions())
	}
	if parsed, err := ParseKeyring(text); err != nil || parsed.Current() != 2 || !bytes.Equal(parsed.Text(), text) {
		t.Fatalf("keyring text does not round-trip: %v", err)
	}
	// The old version still opens old blobs; new blobs use the new version.
	if pt, err := k2.Open(old, ad); err != nil || string(pt) != "s1" {
		t.Fatalf("old blob under the new keyring: %q %v", pt, err)
	}
	re, err := k2.Rewrap(old, ad)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := SealedVersion(re); v != 2 {
		t.Fatalf("rewrapped blob is version %d", v)
	}
	if same, _ := k2.Rewrap(re, ad); !bytes.Equal(same, re) {
		t.Fatal("rewrapping a current blob changed it")
	}
	retired := k2.Retain()
	if pt, err := retired.Open(re, ad); err != nil || string(pt) != "s1" {
		t.Fatalf("rewrapped blob after retiring v1: %q %v", pt, err)
	}
	_, err = retired.Open(old, ad)
	if daoguard.ErrorCode(err) != daoguard.CodeConfig {
		t.Fatalf("a blob of a retired version: %v, want INVALID_CONFIG naming the version", err)
	}
}

func FuzzOpen(f *testing.F) {
	k := testKeyring(f)
	good, _ := k.Seal([]byte("secret"), []byte("ad"))
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// GCM is authenticated: only the one blob sealed with this key opens.
		if pt, err := k.Open(b, []byte("ad")); err == nil && !bytes.Equal(b, good) {
			t.Fatalf("forged blob opened to %q", pt)
		}
	})
}
