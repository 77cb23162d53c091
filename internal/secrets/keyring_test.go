package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestKeyring(t *testing.T) {
	k, err := ParseKeyring(NewKeyringFile())
	if err != nil || k.Current() != 1 || k.Versions() != 1 {
		t.Fatalf("fresh keyring: %v %v", k, err)
	}
	two := string(NewKeyringFile()) + strings.Replace(string(NewKeyringFile()), "1:", "2:", 1)
	if k, err := ParseKeyring([]byte(two)); err != nil || k.Current() != 2 {
		t.Fatalf("two versions: %v", err)
	}
	for _, bad := range []string{"", "# only a comment\n", "1:short", "x:" + strings.Repeat("A", 44), "0:" + strings.Repeat("A", 44),
		"1:" + strings.Repeat("A", 44) + "\n1:" + strings.Repeat("A", 44), "no colon"} {
		if _, err := ParseKeyring([]byte(bad)); daoguard.ErrorCode(err) != daoguard.CodeConfig {
			t.Errorf("ParseKeyring(%q) = %v, want INVALID_CONFIG", bad, err)
		}
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "master.key")
	os.WriteFile(p, NewKeyringFile(), 0o644)
	noenv := func(string) string { return "" }
	if _, err := LoadKeyring(p, "K", noenv); daoguard.ErrorCode(err) != daoguard.CodeConfig {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := LoadKeyring(p, "K", noenv); err != nil {
		t.Fatal(err)
	}
	env := string(NewKeyringFile())
	if _, err := LoadKeyring(filepath.Join(dir, "missing"), "K", func(string) string { return env }); err != nil {
		t.Fatalf("key from the environment: %v", err)
	}
	if _, err := LoadKeyring(filepath.Join(dir, "missing"), "K", noenv); daoguard.ErrorCode(err) != daoguard.CodeConfig {
		t.Fatalf("missing key: %v", err)
	}
}

func FuzzParseKeyring(f *testing.F) {
	f.Add(NewKeyringFile())
	f.Add([]byte("2:abc\n#x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKeyring(b)
		if err == nil && (k.Versions() == 0 || len(k.keys[k.Current()]) != KeySize) {
			t.Fatal("accepted a keyring without a usable current key")
		}
	})
}
