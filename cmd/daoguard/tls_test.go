package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeTLS: --tls-cert/--tls-key serve HTTPS; plain HTTP off loopback
// is refused unless --insecure-listen says a TLS proxy is in front.
func TestServeTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, nil, "init", "--data", dir); code != 0 {
		t.Fatal(errs)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	addr := freeAddr(t)
	logs := &lockedWriter{}
	// startServe polls plain /healthz; over TLS it just waits out its loop.
	stop := startServe(t, logs, nil, "--data", dir, "--tls-cert", certFile, "--tls-key", keyFile, "--addr", addr)
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("https: %v; %s", err, logs.String())
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("https healthz: %d", res.StatusCode)
	}
	stop()

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--data", dir, "--addr", "0.0.0.0:1"}, exitUsage, "plain HTTP"},
		{[]string{"serve", "--data", dir, "--tls-cert", certFile}, exitUsage, "go together"},
	} {
		code, _, errs := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q", tc.args, code, errs)
		}
	}
}
