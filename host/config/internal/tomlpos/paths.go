package tomlpos

import "sort"

// Paths returns every indexed path in document order (by position), so
// callers can report problems in the order a reader meets them.
func (ix *Index) Paths() []string {
	if ix == nil {
		return nil
	}
	out := make([]string, 0, len(ix.keys))
	for p := range ix.keys {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := ix.keys[out[i]].pos, ix.keys[out[j]].pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return out[i] < out[j]
	})
	return out
}
