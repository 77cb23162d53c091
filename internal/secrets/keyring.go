// Package secrets keeps daoguard's master key-encryption keys. A keyring is
// versioned so that keys can be rotated: new data is sealed with the newest
// version, old versions stay readable until retired. (Envelope encryption
// of stored secrets builds on this with the authentication layer.)
//
// The keyring file holds one line per version, "<version>:<base64 of 32
// random bytes>", and must be readable by its owner only.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/daoguard/daoguard"
)

// KeySize is the size of a master key: AES-256.
const KeySize = 32

// Keyring is a set of versioned master keys.
type Keyring struct {
	keys map[int][]byte
	cur  int
}

// Current returns the newest version.
func (k *Keyring) Current() int { return k.cur }

// Versions returns how many versions the keyring holds.
func (k *Keyring) Versions() int { return len(k.keys) }

// NewKeyringFile returns the text of a keyring holding one fresh key.
func NewKeyringFile() []byte {
	key := make([]byte, KeySize)
	rand.Read(key) // never fails (Go 1.24+)
	return fmt.Appendf(nil, "1:%s\n", base64.StdEncoding.EncodeToString(key))
}

// ParseKeyring parses keyring text. Errors name the line, never the key.
func ParseKeyring(b []byte) (*Keyring, error) {
	k := &Keyring{keys: map[int][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		vs, enc, ok := strings.Cut(line, ":")
		v, err := strconv.Atoi(vs)
		if !ok || err != nil || v < 1 {
			return nil, daoguard.Errorf(daoguard.CodeConfig, "master key line %d: want <version>:<base64 key>", n)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != KeySize {
			return nil, daoguard.Errorf(daoguard.CodeConfig, "master key line %d: the key must be %d bytes in base64", n, KeySize)
		}
		if _, dup := k.keys[v]; dup {
			return nil, daoguard.Errorf(daoguard.CodeConfig, "master key line %d: version %d appears twice", n, v)
		}
		k.keys[v] = key
		k.cur = max(k.cur, v)
	}
	if len(k.keys) == 0 {
		return nil, daoguard.Errorf(daoguard.CodeConfig, "the master keyring holds no key")
	}
	return k, nil
}

// LoadKeyring reads the keyring from the environment variable env if set
// (for secret managers that inject variables), else from path, which must
// not be readable by group or others.
func LoadKeyring(path, env string, getenv func(string) string) (*Keyring, error) {
	if v := getenv(env); v != "" {
		return ParseKeyring([]byte(v))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("cannot read the master key: %v", err), Hint: "set " + env + " or restore the key file"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("master key file %s is readable by others (mode %v)", path, fi.Mode().Perm()), Hint: "chmod 600 " + path}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyring(b)
}
