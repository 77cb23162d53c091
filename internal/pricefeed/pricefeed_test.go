package pricefeed

import (
	"context"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daoguard/daoguard/internal/policy"
)

// endpoint is a real HTTP server on loopback whose body the test sets.
type endpoint struct {
	mu     sync.Mutex
	status int
	body   string
	*httptest.Server
}

func newEndpoint(t *testing.T, body string) *endpoint {
	e := &endpoint{status: 200, body: body}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.status)
		w.Write([]byte(e.body))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) set(status int, body string) {
	e.mu.Lock()
	e.status, e.body = status, body
	e.mu.Unlock()
}

func cfg() policy.PriceConfig {
	dev, _ := policy.ParsePercent("2")
	return policy.PriceConfig{MaxAge: 5 * time.Minute, MaxDeviation: dev, Quorum: 2}
}

func TestPollAggregatesLoopbackSources(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newEndpoint(t, `{"ethereum": {"usd": 2000.5}, "usd-coin": {"usd": "1.0001"}}`)
	b := newEndpoint(t, `{"data": [{"symbol": "ETH", "price": "2001.5"}], "ts": 1800000000}`)
	c := newEndpoint(t, `{"eth": 2600}`) // manipulated: far from the others
	p := New([]Source{
		{Name: "a", URL: a.URL, Prices: map[string]string{"ETH": "ethereum.usd", "USDC": "usd-coin.usd"}},
		{Name: "b", URL: b.URL, Prices: map[string]string{"ETH": "data.0.price"}, Time: "ts"},
		{Name: "c", URL: c.URL, Prices: map[string]string{"ETH": "eth"}},
	})
	p.Now = func() time.Time { return now }
	if err := p.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	q := p.Quotes()
	if len(q["ETH"].Readings()) != 3 || len(q["USDC"].Readings()) != 1 {
		t.Fatalf("readings %+v", q)
	}
	// The median of the two kept readings is the lower middle: 2000.5.
	got := policy.Aggregate(q["ETH"].Readings(), now, cfg())
	if got.Value == nil || policy.FormatPrice(got.Value) != policy.FormatPrice(mustPrice(t, "2000.5")) || len(got.Rejected) != 1 || !strings.HasPrefix(got.Rejected[0], "c: deviates") {
		t.Fatalf("ETH: %+v", got)
	}
	// One source alone is below the quorum: no price, USD rules fail closed.
	if got := policy.Aggregate(q["USDC"].Readings(), now, cfg()); got.Value != nil {
		t.Fatalf("USDC priced from one source: %+v", got)
	}

	// b goes down and a starts serving garbage: their last readings stay,
	// and age until the policy calls them stale.
	b.set(http.StatusBadGateway, "")
	a.set(200, `{"ethereum": {"usd": "0x10"}}`)
	now = now.Add(6 * time.Minute)
	err := p.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "b: HTTP 502") || !strings.Contains(err.Error(), `ETH: price "0x10"`) {
		t.Fatalf("errors: %v", err)
	}
	got = policy.Aggregate(p.Quotes()["ETH"].Readings(), now, cfg())
	if got.Value != nil || !strings.Contains(strings.Join(got.Rejected, ";"), "stale") {
		t.Fatalf("after the outage: %+v", got)
	}
}

func TestFetchRefusesBadBodies(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":      `{"eth": `,
		"two values":    `{"eth": 1} {"eth": 2}`,
		"missing":       `{"btc": 1}`,
		"negative":      `{"eth": -1}`,
		"zero":          `{"eth": "0"}`,
		"hex string":    `{"eth": "0x10"}`,
		"bool":          `{"eth": true}`,
		"inside scalar": `{"eth": 5, "x": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEndpoint(t, body)
			path := "eth"
			if name == "inside scalar" {
				path = "eth.usd"
			}
			p := New([]Source{{Name: "s", URL: e.URL, Prices: map[string]string{"ETH": path}}})
			if err := p.Poll(context.Background()); err == nil {
				t.Fatal("accepted")
			}
			if q := p.Quotes()["ETH"]; q != nil {
				t.Fatalf("a reading came out of a bad body: %+v", q.Readings())
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newEndpoint(t, `{"eth": 1}`)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	p := New([]Source{{Name: "r", URL: redirect.URL, Prices: map[string]string{"ETH": "eth"}}})
	if err := p.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 302") {
		t.Fatalf("redirect: %v", err)
	}
}

func TestSourceValidate(t *testing.T) {
	for _, s := range []Source{
		{URL: "http://x", Prices: map[string]string{"E": "e"}},
		{Name: "n", URL: "ftp://x", Prices: map[string]string{"E": "e"}},
		{Name: "n", URL: "http://x"},
		{Name: "n", URL: "http://x", Prices: map[string]string{"E": ""}},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	ok := Source{Name: "n", URL: "https://x.example/p", Prices: map[string]string{"ETH": "a.b"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`{"a": {"b": [1, "2.5", {"c": 3e2}]}}`), "a.b.2.c")
	f.Add([]byte(`[]`), "0")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		doc, err := decode(body)
		if err != nil {
			return
		}
		v, err := lookup(doc, path)
		if err != nil {
			return
		}
		if p, err := parsePrice(v); err == nil && p.Sign() <= 0 {
			t.Fatalf("non-positive price %v from %q", p, body)
		}
		parseTime(v)
	})
}

func mustPrice(t *testing.T, s string) *big.Int {
	p, err := policy.ParsePrice(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
