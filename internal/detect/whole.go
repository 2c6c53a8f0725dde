package detect

// KindWhole is the kind of the Whole detector's spans.
const KindWhole = "whole"

// Whole matches every non-empty input entirely, however long: what masks a
// column by its name. A Pattern cannot do this job: matches longer than
// PatternMaxLen are dropped, so a long value would pass unmasked.
func Whole() Detector { return whole{} }

type whole struct{}

func (whole) Kind() string { return KindWhole }

func (whole) Find(b []byte, dst []Span) []Span {
	if len(b) > 0 {
		dst = append(dst, Span{Start: 0, End: len(b), Kind: KindWhole})
	}
	return dst
}

// In a Stream every chunk is covered as it comes: nothing is held back,
// nothing before a chunk is needed.
func (w whole) scan(b []byte, dst []Span, _, _ bool) ([]Span, int) {
	return w.Find(b, dst), len(b)
}

func (whole) back() int { return 0 }
