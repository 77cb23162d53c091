package pricefeed

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/daoguard/daoguard/internal/policy"
	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
)

// The two AggregatorV3Interface functions read, by selector.
var (
	selDecimals        = []byte{0x31, 0x3c, 0xe5, 0x67} // decimals()
	selLatestRoundData = []byte{0xfe, 0xaf, 0x96, 0x8c} // latestRoundData()
)

// maxFeedDecimals bounds decimals(): real feeds use 8 or 18.
const maxFeedDecimals = 36

// readAggregators reads every aggregator of s at the chain's latest block.
// A feed that fails is an error for its symbol only.
func (p *Poller) readAggregators(ctx context.Context, s *Source) (map[string]policy.Reading, error) {
	if p.Chain == nil {
		return nil, errors.New("no chain is configured to read aggregators from")
	}
	syms := make([]string, 0, len(s.Aggregators))
	for sym := range s.Aggregators {
		syms = append(syms, sym)
	}
	sort.Strings(syms)
	got := make(map[string]policy.Reading, len(syms))
	var errs []error
	for _, sym := range syms {
		r, err := readAggregator(ctx, p.Chain, common.HexToAddress(s.Aggregators[sym]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sym, err))
			continue
		}
		r.Source = s.Name
		got[sym] = r
	}
	return got, errors.Join(errs...)
}

// readAggregator reads one feed's latest round and checks it the way
// Chainlink's own guidance asks of consumers: the answer must be positive,
// the round complete (updatedAt set), and answered in the round itself
// (answeredInRound ≥ roundId, else it is a carried-over answer). Freshness
// is not judged here: the reading carries updatedAt, and the policy's
// max_age decides, like any other source's.
func readAggregator(ctx context.Context, c ethereum.ContractCaller, feed common.Address) (policy.Reading, error) {
	dec, err := call(ctx, c, feed, selDecimals, 1)
	if err != nil {
		return policy.Reading{}, fmt.Errorf("decimals(): %w", err)
	}
	d := new(big.Int).SetBytes(dec[0])
	if !d.IsInt64() || d.Int64() > maxFeedDecimals {
		return policy.Reading{}, fmt.Errorf("decimals() = %s is not a feed's", d)
	}
	w, err := call(ctx, c, feed, selLatestRoundData, 5)
	if err != nil {
		return policy.Reading{}, fmt.Errorf("latestRoundData(): %w", err)
	}
	roundID := new(big.Int).SetBytes(w[0])
	answer := signed(w[1])
	updatedAt := new(big.Int).SetBytes(w[3])
	answeredIn := new(big.Int).SetBytes(w[4])
	switch {
	case answer.Sign() <= 0:
		return policy.Reading{}, fmt.Errorf("round %s: answer %s is not a positive price", roundID, answer)
	case updatedAt.Sign() == 0:
		return policy.Reading{}, fmt.Errorf("round %s is not complete (updatedAt is 0)", roundID)
	case answeredIn.Cmp(roundID) < 0:
		return policy.Reading{}, fmt.Errorf("round %s carries the answer of round %s", roundID, answeredIn)
	case !updatedAt.IsInt64():
		return policy.Reading{}, fmt.Errorf("round %s: updatedAt %s is not a time", roundID, updatedAt)
	}
	// answer / 10^decimals USD, in the policy's fixed point (exact: both
	// scales are powers of ten; digits below 10^-18 USD are dropped).
	price := new(big.Int).Mul(answer, policy.PriceScale)
	price.Quo(price, new(big.Int).Exp(big.NewInt(10), d, nil))
	if price.Sign() <= 0 {
		return policy.Reading{}, fmt.Errorf("round %s: answer %s is below 10^-18 USD", roundID, answer)
	}
	return policy.Reading{Price: price, At: time.Unix(updatedAt.Int64(), 0).UTC()}, nil
}

// call runs a view function without arguments and returns its first n
// 32-byte return words.
func call(ctx context.Context, c ethereum.ContractCaller, to common.Address, sel []byte, n int) ([][]byte, error) {
	out, err := c.CallContract(ctx, ethereum.CallMsg{To: &to, Data: sel}, nil)
	if err != nil {
		return nil, err
	}
	if len(out) < 32*n {
		return nil, fmt.Errorf("returned %d bytes, not %d words (is %s an aggregator?)", len(out), n, to.Hex())
	}
	ws := make([][]byte, n)
	for i := range ws {
		ws[i] = out[32*i : 32*(i+1)]
	}
	return ws, nil
}

// signed reads a two's-complement int256 word.
func signed(w []byte) *big.Int {
	v := new(big.Int).SetBytes(w)
	if w[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 256))
	}
	return v
}
