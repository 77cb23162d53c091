// Package auth authenticates requests: daoguard's RFC 9421 profile
// (signature.go parses and computes, authenticator.go enforces), key
// identifiers that carry their environment and a checksum so that secret
// scanners can recognise them offline (as GitHub's token format does),
// per-key and per-source rate limits, and the scanner for leaked secrets.
package auth

import (
	"crypto/rand"
	"encoding/json"
	"hash/crc32"
	"strings"

	"github.com/daoguard/daoguard"
)

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// Environments.
const (
	EnvTest = "test"
	EnvLive = "live"
)

// NewKeyID returns "dg_<env>_" + 24 random base32 characters (120 bits) +
// 6 characters of CRC-32 checksum over everything before them.
func NewKeyID(env string) string {
	var b [24]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	body := make([]byte, 24)
	for i, v := range b {
		body[i] = crockford[v&31]
	}
	prefix := "dg_" + env + "_" + string(body)
	return prefix + checksum(prefix)
}

func checksum(s string) string {
	c := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = crockford[c&31]
		c >>= 5
	}
	return string(out)
}

// ParseKeyID checks a key ID's form and checksum and returns its
// environment. Errors: INVALID_ARGUMENT.
func ParseKeyID(id string) (env string, err error) {
	bad := daoguard.Errorf(daoguard.CodeInvalid, "malformed key id")
	rest, ok := strings.CutPrefix(id, "dg_")
	if !ok || len(rest) != 4+1+24+6 {
		return "", bad
	}
	env = rest[:4]
	if (env != EnvTest && env != EnvLive) || rest[4] != '_' {
		return "", bad
	}
	for _, c := range rest[5:] {
		if !strings.ContainsRune(crockford, c) {
			return "", bad
		}
	}
	if checksum(id[:len(id)-6]) != id[len(id)-6:] {
		return "", bad
	}
	return env, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
