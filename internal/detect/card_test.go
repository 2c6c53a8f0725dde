package detect

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// Issue 18: card numbers separated by single spaces merged into one run
// longer than 19 digits and none was masked; 16-19-digit order numbers
// that merely pass Luhn were.
func TestCreditCardLists(t *testing.T) {
	run(t, KindCreditCard, []tcase{
		{"4111 1111 1111 1111 5500 0000 0000 0004", []string{"4111 1111 1111 1111", "5500 0000 0000 0004"}},
		{"4111 1111 1111 1111 5500 0000 0000 0004 3782 822463 10005.", []string{"4111 1111 1111 1111", "5500 0000 0000 0004", "3782 822463 10005"}},
		{"4111111111111111 5500000000000004", []string{"4111111111111111", "5500000000000004"}},
		{"cards: 4111111111111111 5500000000000004 378282246310005", []string{"4111111111111111", "5500000000000004", "378282246310005"}},
		{"4111-1111-1111-1111 5500-0000-0000-0004", []string{"4111-1111-1111-1111", "5500-0000-0000-0004"}},
		{"12 4111 1111 1111 1111", []string{"4111 1111 1111 1111"}}, // a quantity before it
		{"4111111111111111 7", nil}, // one compact number in a run: no context
		{"Visa: 4111111111111111", []string{"4111111111111111"}},
		{"discover 6011111111111117", []string{"6011111111111117"}},
		{"CC 5500000000000004", []string{"5500000000000004"}},
		{"order 6011111111111117 shipped", nil},
		{"account 5500000000000004", nil},                                // "cc" inside a word is no keyword
		{"4111111111111111", nil},                                        // a cell holding an order number
		{"order 4111 1111 1111 1111" + strings.Repeat(" 1111", 30), nil}, // a run over cardRunMax
	})
	r := rand.New(rand.NewSource(4))
	d, _ := Builtin(KindCreditCard)
	checkChunkings(t, NewSet(d), []byte("cards 4111111111111111 5500000000000004 x "+
		"4111 1111 1111 1111 5500 0000 0000 0004 3782 822463 10005 and order 6011111111111117, card: 6011111111111117"), r, 100)
}

// luhnDigit returns d with a check digit appended.
func luhnDigit(d []byte) []byte {
	for c := byte('0'); c <= '9'; c++ {
		if luhn(append(d, c)) {
			return append(d, c)
		}
	}
	panic("unreachable")
}

// TestCreditCardOrderNumbers measures how many random 16-19-digit numbers
// passing Luhn (order numbers, IDs) are flagged in ordinary text.
func TestCreditCardOrderNumbers(t *testing.T) {
	r := rand.New(rand.NewSource(16))
	d, _ := Builtin(KindCreditCard)
	set := NewSet(d)
	contexts := []string{"order %s shipped", "id: %s", "tracking %s,", "ref=%s;", "%s", "invoice #%s", "[%s]", "account %s"}
	const N = 20000
	flagged, iinLuhn := 0, 0
	for i := 0; i < N; i++ {
		n := 16 + r.Intn(4)
		num := make([]byte, n-1)
		for k := range num {
			num[k] = byte('0' + r.Intn(10))
		}
		num = luhnDigit(num)
		if cardOK(num) {
			iinLuhn++
		}
		in := fmt.Sprintf(contexts[i%len(contexts)], num)
		if len(set.Find([]byte(in), nil)) > 0 {
			flagged++
		}
	}
	rate := float64(flagged) / N
	t.Logf("random 16-19-digit Luhn-valid numbers: %d of %d flagged (%.2f%%); a known IIN and length alone would flag %.1f%%",
		flagged, N, 100*rate, 100*float64(iinLuhn)/N)
	if rate > 0.01 {
		t.Fatalf("%.2f%% of order numbers flagged as cards", 100*rate)
	}
}
