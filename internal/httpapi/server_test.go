package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/httpapi"
	"github.com/daoguard/daoguard/internal/sqlite"
)

func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range daoguard.Codes {
		if s := httpapi.StatusOf(c); s < 400 || (c != daoguard.CodeInternal && c != daoguard.CodeConfig && s == 500) {
			t.Errorf("code %s maps to %d", c, s)
		}
	}
}

func newServer(t *testing.T) (*httptest.Server, *sqlite.DB) {
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "d.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.Server{Store: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	t.Cleanup(func() { srv.Close(); db.Close() })
	return srv, db
}

func TestHealthz(t *testing.T) {
	srv, db := newServer(t)
	res, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 200 || body["status"] != "ok" {
		t.Fatalf("healthz = %d %v", res.StatusCode, body)
	}
	db.Close() // the store goes away: health must say so
	res, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var p httpapi.Problem
	json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	if res.StatusCode != 503 || p.Code != string(daoguard.CodeUnavailable) || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("healthz with store down = %d %+v", res.StatusCode, p)
	}
}

func TestUnknownRouteIsProblem(t *testing.T) {
	srv, _ := newServer(t)
	for _, tc := range []struct{ method, path string }{{"GET", "/nope"}, {"POST", "/healthz"}, {"DELETE", "/v1/actions"}} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p httpapi.Problem
		json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if res.Header.Get("Content-Type") != "application/problem+json" || p.Code == "" || p.Status != res.StatusCode {
			t.Errorf("%s %s: %d %+v", tc.method, tc.path, res.StatusCode, p)
		}
	}
}
