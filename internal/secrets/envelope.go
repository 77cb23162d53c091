package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/daoguard/daoguard"
)

// Envelope encryption. Every secret is encrypted with its own random data
// key (AES-256-GCM), and the data key is encrypted ("wrapped") with a
// version of the master key, named in the blob. The master key never
// encrypts data directly, a leaked data key exposes one secret only, and
// old master versions stay readable until every blob is re-sealed.
//
// Both encryptions take the caller's associated data: the place the blob is
// stored ("credentials.sealed_secret:<key id>"). A blob copied into another
// row or column fails to open, so whoever can write the database cannot
// swap one principal's secret for another's.
//
// Sealed layout (all integers big-endian):
//
//	[0]      format (1)
//	[1:5]    master key version
//	[5:17]   nonce of the wrapped data key
//	[17:65]  wrapped data key (32 bytes + 16-byte GCM tag)
//	[65:77]  nonce of the ciphertext
//	[77:]    ciphertext + 16-byte GCM tag
const (
	format       = 1
	headerSize   = 1 + 4
	nonceSize    = 12
	wrappedSize  = KeySize + 16
	sealedPrefix = headerSize + nonceSize + wrappedSize + nonceSize
)

// errSealed is the one error every undecryptable blob gets: which check
// failed (version, tag, associated data) is not the caller's business.
var errSealed = daoguard.Errorf(daoguard.CodeInternal, "a sealed secret could not be opened")

// Seal encrypts plaintext under a fresh data key wrapped by the current
// master key version. ad names where the blob will be stored.
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	dek := make([]byte, KeySize)
	rand.Read(dek) // never fails (Go 1.24+)
	out := make([]byte, sealedPrefix, sealedPrefix+len(plaintext)+16)
	out[0] = format
	binary.BigEndian.PutUint32(out[1:5], uint32(k.cur))
	if err := wrap(k.keys[k.cur], out, dek, ad); err != nil {
		return nil, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	n := out[headerSize+nonceSize+wrappedSize : sealedPrefix]
	rand.Read(n)
	return aead.Seal(out, n, plaintext, dataAD(out[:headerSize], ad)), nil
}

// Open decrypts a sealed blob that was stored at the place ad names.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	dek, err := k.unwrap(sealed, ad)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, sealed[sealedPrefix-nonceSize:sealedPrefix], sealed[sealedPrefix:], dataAD(sealed[:headerSize], ad))
	if err != nil {
		return nil, errSealed
	}
	return pt, nil
}

// Rewrap returns the blob sealed under the current master version (with a
// fresh data key), or the blob itself if it already is. Both ciphertexts'
// associated data cover the header, so the version a blob names can never
// be edited to point elsewhere.
func (k *Keyring) Rewrap(sealed, ad []byte) ([]byte, error) {
	pt, err := k.Open(sealed, ad)
	if err != nil {
		return nil, err
	}
	if v, _ := SealedVersion(sealed); v == k.cur {
		return sealed, nil
	}
	return k.Seal(pt, ad)
}

// SealedVersion returns the master key version that wraps a blob.
func SealedVersion(sealed []byte) (int, error) {
	if len(sealed) < sealedPrefix+16 || sealed[0] != format {
		return 0, errSealed
	}
	return int(binary.BigEndian.Uint32(sealed[1:5])), nil
}

func (k *Keyring) unwrap(sealed, ad []byte) ([]byte, error) {
	v, err := SealedVersion(sealed)
	if err != nil {
		return nil, err
	}
	kek, ok := k.keys[v]
	if !ok {
		return nil, &daoguard.Error{Code: daoguard.CodeConfig, Message: fmt.Sprintf("a secret is sealed with master key version %d, which the keyring no longer holds", v),
			Hint: "restore that version to the master key file; retire a version only after `daoguard keys rotate-master` re-wrapped everything"}
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, sealed[headerSize:headerSize+nonceSize], sealed[headerSize+nonceSize:headerSize+nonceSize+wrappedSize], wrapAD(sealed[:headerSize], ad))
	if err != nil {
		return nil, errSealed
	}
	return dek, nil
}

// wrap encrypts dek into out's wrapped-key field.
func wrap(kek, out, dek, ad []byte) error {
	aead, err := newGCM(kek)
	if err != nil {
		return err
	}
	n := out[headerSize : headerSize+nonceSize]
	rand.Read(n)
	aead.Seal(out[headerSize+nonceSize:headerSize+nonceSize], n, dek, wrapAD(out[:headerSize], ad))
	return nil
}

// The two associated data strings differ by purpose, so a wrapped data key
// can never be taken for a ciphertext or the other way round.
func wrapAD(header, ad []byte) []byte {
	return slices.Concat([]byte("daoguard/wrap\x00"), header, ad)
}

func dataAD(header, ad []byte) []byte {
	return slices.Concat([]byte("daoguard/data\x00"), header, ad)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// WithNewVersion returns the keyring text with a fresh key appended as
// version Current()+1, and the keyring that text parses to.
func (k *Keyring) WithNewVersion() ([]byte, *Keyring) {
	key := make([]byte, KeySize)
	rand.Read(key)
	next := &Keyring{keys: map[int][]byte{}, cur: k.cur + 1}
	for v, b := range k.keys {
		next.keys[v] = b
	}
	next.keys[next.cur] = key
	return next.Text(), next
}

// Retain returns a keyring holding only the current version: what is left
// once every blob has been re-wrapped and older versions are retired.
func (k *Keyring) Retain() *Keyring {
	return &Keyring{keys: map[int][]byte{k.cur: k.keys[k.cur]}, cur: k.cur}
}

// Text returns the keyring in its file format, oldest version first.
func (k *Keyring) Text() []byte {
	vs := make([]int, 0, len(k.keys))
	for v := range k.keys {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "%d:%s\n", v, base64.StdEncoding.EncodeToString(k.keys[v]))
	}
	return []byte(b.String())
}
