package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
)

// startServe runs serve in-process until the test (or stop) ends; its log
// goes to logs.
func startServe(t *testing.T, logs *lockedWriter, env map[string]string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Main{Stdout: logs, Stderr: logs, Getenv: func(k string) string { return env[k] }}
	done := make(chan int)
	go func() { done <- m.Run(ctx, append([]string{"serve"}, args...)) }()
	addr := args[len(args)-1]
	for range 200 {
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestScenarioLeaksNoSecret runs the whole key life cycle and a set of
// refused requests, then searches every log, every CLI message, the audit
// log and the database files for every secret the scenario created (in raw,
// base64, base64url and hex form): none may appear. The database holds
// hmac secrets only sealed, so this is also the encryption-at-rest test.
func TestScenarioLeaksNoSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	env := map[string]string{"DAOGUARD_LOG_LEVEL": "debug"}
	var cliErr bytes.Buffer // everything the CLI printed to stderr
	cli := func(args ...string) (int, string) {
		t.Helper()
		code, out, errs := run(t, env, args...)
		cliErr.WriteString(errs)
		return code, out
	}
	if code, _ := cli("init", "--data", dir, "--url", "http://"+addr); code != 0 {
		t.Fatal(cliErr.String())
	}
	logs := &lockedWriter{}
	stop := startServe(t, logs, env, "--data", dir, "--dev", "--addr", addr)
	creds := filepath.Join(dir, "credentials")
	admin, human1, human2, agent := filepath.Join(creds, "admin.json"), filepath.Join(creds, "human1.json"), filepath.Join(creds, "human2.json"), filepath.Join(creds, "agent.json")

	var created []client.CredentialFile // keys whose secrets were printed, not filed
	code, out := cli("principals", "create", "--credential", admin, "--name", "payroll-bot", "--kind", "agent")
	if code != 0 {
		t.Fatal(cliErr.String())
	}
	var p daoguard.Principal
	json.Unmarshal([]byte(out), &p)
	bot := filepath.Join(t.TempDir(), "bot.json")
	if code, _ := cli("keys", "create", "--credential", admin, "--principal", p.ID, "--alg", "hmac-sha256", "--out", bot); code != 0 {
		t.Fatal(cliErr.String())
	}
	code, out = cli("keys", "create", "--credential", admin, "--principal", p.ID, "--alg", "ed25519")
	var printed struct {
		CredentialFile client.CredentialFile `json:"credential_file"`
	}
	if json.Unmarshal([]byte(out), &printed); code != 0 || printed.CredentialFile.PrivateKey == "" {
		t.Fatalf("keys create (printed): %d %s %s", code, out, cliErr.String())
	}
	created = append(created, printed.CredentialFile)
	botID := readCred(t, bot).KeyID
	bot2 := filepath.Join(t.TempDir(), "bot2.json")
	if code, _ := cli("keys", "rotate", "--credential", admin, "--key-id", botID, "--overlap", "0s", "--out", bot2); code != 0 {
		t.Fatal(cliErr.String())
	}
	// The old key ended with the rotation; the new one works.
	if code, _ := cli("action", "list", "--credential", bot); code != exitFailed {
		t.Fatal("the rotated-out key still works")
	}
	if code, _ := cli("action", "list", "--credential", bot2); code != 0 {
		t.Fatal(cliErr.String())
	}
	for _, args := range [][]string{
		{"pause", "--credential", human1, "--reason", "drill"},
		{"resume", "--credential", human2},
		{"action", "submit", "--credential", agent, "--account", "ops", "--to", "0x1111111111111111111111111111111111111111", "--asset", "USDC", "--amount", "1"},
		{"approve", "--credential", agent, "--id", "act_nope"},
		{"approve", "--credential", human1, "--id", "act_nope"},
		{"keys", "list", "--credential", admin},
		{"keys", "revoke", "--credential", bot2, "--key-id", readCred(t, bot2).KeyID},
		{"action", "list", "--credential", bot2},
	} {
		cli(args...)
	}
	// A forged and a replayed request.
	c, err := client.Load(agent)
	if err != nil {
		t.Fatal(err)
	}
	c.Signer = &client.HMACSigner{ID: c.Signer.KeyID(), Secret: bytes.Repeat([]byte{9}, 32)}
	c.Actions(context.Background(), nil, "", 0)
	stop()

	// Rotate the master key offline and retire the old version; the
	// re-sealed hmac secrets must still verify.
	oldMaster, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if code, _ := cli("keys", "rotate-master", "--data", dir, "--retire"); code != 0 {
		t.Fatal(cliErr.String())
	}
	newMaster, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if strings.HasPrefix(string(newMaster), "1:") || !strings.HasPrefix(string(newMaster), "2:") {
		t.Fatalf("master key after rotate-master --retire: versions %q", strings.Split(string(newMaster), ":")[0])
	}
	stop = startServe(t, logs, env, "--data", dir, "--dev", "--addr", addr)
	if code, _ := cli("action", "list", "--credential", agent); code != 0 {
		t.Fatalf("the agent's hmac key after master rotation: %s", cliErr.String())
	}
	stop()

	// Every secret of the scenario.
	var secrets [][]byte
	for _, f := range []string{admin, human1, human2, agent, bot, bot2} {
		secrets = append(secrets, credSecret(t, readCred(t, f)))
	}
	for _, cf := range created {
		secrets = append(secrets, credSecret(t, cf))
	}
	for _, mk := range []string{string(oldMaster), string(newMaster)} {
		for _, line := range strings.Split(strings.TrimSpace(mk), "\n") {
			_, enc, _ := strings.Cut(line, ":")
			k, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, k)
		}
	}
	auditKey, _ := os.ReadFile(filepath.Join(dir, "audit.key"))
	secrets = append(secrets, bytes.TrimSpace(auditKey))

	// Everything written that is not a key file.
	haystacks := map[string][]byte{"serve log": []byte(logs.String()), "CLI stderr": cliErr.Bytes()}
	for _, name := range []string{"data.db", "data.db-wal", "daoguard.yaml"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			haystacks[name] = b
		}
	}
	if len(haystacks["serve log"]) < 1000 {
		t.Fatalf("the scenario logged suspiciously little: %q", haystacks["serve log"])
	}
	// Positive control: the search finds each file's secret in the file.
	for _, f := range []string{admin, agent, bot2} {
		b, _ := os.ReadFile(f)
		if !bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(credSecret(t, readCred(t, f))))) {
			t.Fatalf("the search cannot find %s's secret in %s itself", f, f)
		}
	}
	for i, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %d is only %d bytes", i, len(s))
		}
		forms := [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s)), []byte(hex.EncodeToString(s))}
		for where, hay := range haystacks {
			for _, f := range forms {
				if bytes.Contains(hay, f) {
					t.Errorf("secret %d found in %s", i, where)
				}
			}
		}
	}
}

func readCred(t *testing.T, path string) client.CredentialFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cf client.CredentialFile
	if err := json.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	return cf
}

func credSecret(t *testing.T, cf client.CredentialFile) []byte {
	t.Helper()
	enc := cf.Secret + cf.PrivateKey
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b) < 32 {
		t.Fatalf("credential %s has no secret: %v", cf.KeyID, err)
	}
	return b
}
