package daoguard_test

import (
	"math/big"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in       string
		decimals int
		want     string // base units; "" means INVALID_AMOUNT
	}{
		{"1500.00", 6, "1500000000"},
		{"1500.25", 6, "1500250000"},
		{"0.000001", 6, "1"},
		{"0", 6, "0"},
		{"7", 0, "7"},
		{"1", 18, "1000000000000000000"},
		{"115792089237316195423570985008687907853269984665640564039457584007913129639935", 0, "115792089237316195423570985008687907853269984665640564039457584007913129639935"},
		{"0.0000001", 6, ""}, // too many decimals
		{"1.5", 0, ""},
		{"-1", 6, ""},
		{"+1", 6, ""},
		{"1e6", 6, ""},
		{"1E6", 6, ""},
		{"0x10", 6, ""},
		{"1.", 6, ""},
		{".5", 6, ""},
		{"1..5", 6, ""},
		{"1.2.3", 6, ""},
		{"1,000", 6, ""},
		{"1_000", 6, ""},
		{" 1", 6, ""},
		{"1 ", 6, ""},
		{"01", 6, ""},
		{"00.5", 6, ""},
		{"NaN", 6, ""},
		{"Inf", 6, ""},
		{"", 6, ""},
		{"١", 6, ""}, // Arabic-Indic digit one
		{"115792089237316195423570985008687907853269984665640564039457584007913129639936", 0, ""}, // 2^256
		{strings.Repeat("9", 81), 0, ""},
		{"1", -1, ""},
		{"1", daoguard.MaxDecimals + 1, ""},
	} {
		got, err := daoguard.ParseAmount(tc.in, tc.decimals)
		if tc.want == "" {
			if daoguard.ErrorCode(err) != daoguard.CodeInvalidAmount {
				t.Errorf("ParseAmount(%q, %d) = %v, %v; want INVALID_AMOUNT", tc.in, tc.decimals, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseAmount(%q, %d) = %v, %v; want %s", tc.in, tc.decimals, got, err, tc.want)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		base     int64
		decimals int
		want     string
	}{
		{1500250000, 6, "1500.25"}, {1, 6, "0.000001"}, {0, 6, "0"}, {7, 0, "7"}, {1000000, 6, "1"}, {-1500000, 6, "-1.5"},
	} {
		if got := daoguard.FormatAmount(big.NewInt(tc.base), tc.decimals); got != tc.want {
			t.Errorf("FormatAmount(%d, %d) = %q, want %q", tc.base, tc.decimals, got, tc.want)
		}
	}
}

// FuzzParseAmount: whatever ParseAmount accepts is a non-negative uint256
// that FormatAmount renders back to an equal amount; it never panics.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"1500.00", "0.000001", "1e6", "-1", "01", "1.", ".5", "99999999999999999999999999999"} {
		f.Add(s, uint8(6))
	}
	f.Fuzz(func(t *testing.T, s string, d uint8) {
		decimals := int(d % 40)
		v, err := daoguard.ParseAmount(s, decimals)
		if err != nil {
			if daoguard.ErrorCode(err) != daoguard.CodeInvalidAmount {
				t.Fatalf("error code %q", daoguard.ErrorCode(err))
			}
			return
		}
		if v.Sign() < 0 || v.BitLen() > 256 {
			t.Fatalf("%q → %v out of range", s, v)
		}
		back, err := daoguard.ParseAmount(daoguard.FormatAmount(v, decimals), decimals)
		if err != nil || back.Cmp(v) != 0 {
			t.Fatalf("%q → %v → %q → %v, %v", s, v, daoguard.FormatAmount(v, decimals), back, err)
		}
	})
}

// TestAppendAmount: AppendAmount writes what FormatAmount returns, for
// small and large values and every placement of the decimal point.
func TestAppendAmount(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	for _, v := range []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(10), big.NewInt(1_000_000), big.NewInt(1_230_000), big.NewInt(-5), new(big.Int).SetUint64(1<<64 - 1), huge} {
		for _, dec := range []int{0, 1, 2, 6, 18, 25} {
			if got, want := string(daoguard.AppendAmount([]byte("x"), v, dec)), "x"+daoguard.FormatAmount(v, dec); got != want {
				t.Errorf("%s at %d: %q, want %q", v, dec, got, want)
			}
		}
	}
}
