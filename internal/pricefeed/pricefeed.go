// Package pricefeed polls price sources in the background — HTTP JSON
// endpoints and on-chain aggregators (Chainlink's AggregatorV3 read side)
// — and hands the policy engine a snapshot of their readings. Deciding never
// waits on the network: it reads the last snapshot, and the policy's price
// rules (freshness, deviation from the median, quorum) decide which
// readings count.
package pricefeed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daoguard/daoguard/internal/policy"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// Defaults copied into a new Poller.
const (
	DefaultEvery   = 30 * time.Second
	DefaultTimeout = 5 * time.Second
	maxBody        = 1 << 20
)

// Source is one price source: an HTTP JSON endpoint and where its prices
// are in the body (URL, Prices, Time), or on-chain aggregators read through
// the chain's JSON-RPC (Aggregators).
type Source struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Prices maps an asset symbol to the path of its USD price in the JSON
	// body: object keys and array indices separated by dots
	// ("ethereum.usd", "data.0.price"). The value is a JSON number or a
	// decimal string.
	Prices map[string]string `yaml:"prices"`
	// Time is the path of the time the endpoint says its prices are from
	// (UNIX seconds, as a number or a string, or RFC 3339). Without it, a
	// reading is as old as the response. A source that states its time
	// lets a frozen upstream show as stale instead of fresh.
	Time string `yaml:"time"`
	// Aggregators maps an asset symbol to the address of an on-chain feed
	// with Chainlink's AggregatorV3 read side (decimals, latestRoundData)
	// quoting it in USD. A reading is as old as the round's updatedAt.
	Aggregators map[string]string `yaml:"aggregators"`
}

// Validate checks a source's fields.
func (s *Source) Validate() error {
	if s.Name == "" {
		return errors.New("name is required")
	}
	if len(s.Aggregators) > 0 {
		if s.URL != "" || len(s.Prices) > 0 || s.Time != "" {
			return errors.New("a source is either an HTTP endpoint (url, prices, time) or on-chain aggregators, not both")
		}
		for sym, addr := range s.Aggregators {
			if sym == "" {
				return errors.New("aggregators: symbols must not be empty")
			}
			if !common.IsHexAddress(addr) {
				return fmt.Errorf("aggregators.%s: %q is not an address", sym, addr)
			}
		}
		return nil
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an http(s) URL", s.URL)
	}
	if len(s.Prices) == 0 {
		return errors.New("prices: at least one symbol and its path")
	}
	for sym, p := range s.Prices {
		if sym == "" || p == "" {
			return errors.New("prices: symbols and paths must not be empty")
		}
	}
	return nil
}

// Poller keeps the latest reading of every (source, symbol).
type Poller struct {
	Sources []Source
	Client  *http.Client
	// Chain reads the aggregators (ethclient.Client, or the dev chain's
	// simulated client); nil fails every aggregator source.
	Chain  ethereum.ContractCaller
	Every  time.Duration
	Logger *slog.Logger
	Now    func() time.Time

	mu     sync.Mutex
	latest map[string]map[string]policy.Reading // symbol → source → reading
	snap   atomic.Pointer[map[string]*policy.Quotes]
}

// New returns a poller with the defaults. Redirects are refused: a price
// endpoint that moves is a configuration problem, not something to follow.
func New(sources []Source) *Poller {
	return &Poller{
		Sources: sources, Every: DefaultEvery, Logger: slog.Default(), Now: time.Now,
		Client: &http.Client{Timeout: DefaultTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// Quotes returns the last snapshot: one Quotes per symbol. Safe for
// concurrent use; never blocks on the network.
func (p *Poller) Quotes() map[string]*policy.Quotes {
	if m := p.snap.Load(); m != nil {
		return *m
	}
	return nil
}

// Run polls every Every until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.Logger.Warn("price poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll fetches every source once, concurrently, and publishes a new
// snapshot. A source that fails keeps its previous reading, which ages
// until the policy calls it stale; the errors are returned joined.
func (p *Poller) Poll(ctx context.Context) error {
	type result struct {
		src *Source
		got map[string]policy.Reading
		err error
	}
	results := make([]result, len(p.Sources))
	var wg sync.WaitGroup
	for i := range p.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got map[string]policy.Reading
			var err error
			if len(p.Sources[i].Aggregators) > 0 {
				got, err = p.readAggregators(ctx, &p.Sources[i])
			} else {
				got, err = p.fetch(ctx, &p.Sources[i])
			}
			results[i] = result{&p.Sources[i], got, err}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.latest == nil {
		p.latest = map[string]map[string]policy.Reading{}
	}
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.src.Name, r.err))
		}
		for sym, rd := range r.got {
			if p.latest[sym] == nil {
				p.latest[sym] = map[string]policy.Reading{}
			}
			p.latest[sym][r.src.Name] = rd
		}
	}
	snap := make(map[string]*policy.Quotes, len(p.latest))
	for sym, bySrc := range p.latest {
		rs := make([]policy.Reading, 0, len(bySrc))
		for _, rd := range bySrc {
			rs = append(rs, rd)
		}
		snap[sym] = policy.NewQuotes(rs...)
	}
	p.snap.Store(&snap)
	return errors.Join(errs...)
}

// fetch reads one source. A price that is missing or malformed is an error
// for that symbol only; the others still count.
func (p *Poller) fetch(ctx context.Context, s *Source) (map[string]policy.Reading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	at := p.Now()
	doc, err := decode(body)
	if err != nil {
		return nil, err
	}
	if s.Time != "" {
		v, err := lookup(doc, s.Time)
		if err != nil {
			return nil, fmt.Errorf("time: %w", err)
		}
		if at, err = parseTime(v); err != nil {
			return nil, fmt.Errorf("time: %w", err)
		}
	}
	got := make(map[string]policy.Reading, len(s.Prices))
	var errs []error
	syms := make([]string, 0, len(s.Prices))
	for sym := range s.Prices {
		syms = append(syms, sym)
	}
	sort.Strings(syms) // errors in a stable order
	for _, sym := range syms {
		path := s.Prices[sym]
		v, err := lookup(doc, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sym, err))
			continue
		}
		price, err := parsePrice(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sym, err))
			continue
		}
		got[sym] = policy.Reading{Source: s.Name, Price: price, At: at}
	}
	return got, errors.Join(errs...)
}

func decode(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // exact: never through float64
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("body holds more than one JSON value")
	}
	return doc, nil
}

// lookup follows a dot-separated path of object keys and array indices.
func lookup(doc any, path string) (any, error) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[part]
			if !ok {
				return nil, fmt.Errorf("no %q in %s", part, path)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(v) {
				return nil, fmt.Errorf("no element %q in %s", part, path)
			}
			cur = v[i]
		default:
			return nil, fmt.Errorf("%s: %q is inside a scalar", path, part)
		}
	}
	return cur, nil
}

// parsePrice accepts a JSON number (its grammar is checked by the decoder;
// exponents allowed) or a plain decimal string.
func parsePrice(v any) (*big.Int, error) {
	switch x := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok || r.Sign() <= 0 {
			return nil, fmt.Errorf("%s is not a positive price", x)
		}
		r.Mul(r, new(big.Rat).SetInt(policy.PriceScale))
		return new(big.Int).Quo(r.Num(), r.Denom()), nil
	case string:
		return policy.ParsePrice(x)
	}
	return nil, fmt.Errorf("price is a %T, not a number", v)
}

func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case json.Number:
		return unix(string(x))
	case string:
		if t, err := time.Parse(time.RFC3339, x); err == nil {
			return t, nil
		}
		return unix(x)
	}
	return time.Time{}, fmt.Errorf("a %T is not a time", v)
}

func unix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return time.Time{}, fmt.Errorf("%q is not UNIX seconds", s)
	}
	return time.Unix(n, 0), nil
}
