package detect

// keywordMatcher finds every occurrence of a set of lower-case ASCII
// keywords in one pass, ignoring ASCII case (Aho-Corasick, as a DFA over
// the bytes the keywords use).
type keywordMatcher struct {
	words []string
	class [256]uint8 // byte -> column; 0 for bytes no keyword holds
	ncols int
	next  []int32 // state*ncols + column -> state
	depth []int32 // length of the text a state stands for
	out   [][]int32
}

func newKeywordMatcher(words []string) *keywordMatcher {
	m := &keywordMatcher{words: words, ncols: 1}
	for _, w := range words {
		for i := 0; i < len(w); i++ {
			c := w[i]
			if m.class[c] == 0 {
				m.class[c] = uint8(m.ncols)
				m.ncols++
			}
		}
	}
	// Fold ASCII upper case onto the lower-case columns.
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	// The trie, with -1 for a missing edge.
	goTo := [][]int32{make([]int32, m.ncols)}
	m.depth = []int32{0}
	m.out = [][]int32{nil}
	for i := range goTo[0] {
		goTo[0][i] = -1
	}
	for id, w := range words {
		s := int32(0)
		for i := 0; i < len(w); i++ {
			col := m.class[w[i]]
			if goTo[s][col] < 0 {
				row := make([]int32, m.ncols)
				for j := range row {
					row[j] = -1
				}
				goTo = append(goTo, row)
				m.depth = append(m.depth, m.depth[s]+1)
				m.out = append(m.out, nil)
				goTo[s][col] = int32(len(goTo) - 1)
			}
			s = goTo[s][col]
		}
		m.out[s] = append(m.out[s], int32(id))
	}
	// Breadth first: fail links, then every missing edge filled from the
	// fail state's, and the outputs of the fail state inherited.
	fail := make([]int32, len(goTo))
	m.next = make([]int32, len(goTo)*m.ncols)
	queue := []int32{}
	for col := 0; col < m.ncols; col++ {
		t := goTo[0][col]
		if t < 0 {
			m.next[col] = 0
			continue
		}
		m.next[col] = t
		fail[t] = 0
		queue = append(queue, t)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		m.out[s] = append(m.out[s], m.out[fail[s]]...)
		for col := 0; col < m.ncols; col++ {
			t := goTo[s][col]
			if t < 0 {
				m.next[int(s)*m.ncols+col] = m.next[int(fail[s])*m.ncols+col]
				continue
			}
			m.next[int(s)*m.ncols+col] = t
			fail[t] = m.next[int(fail[s])*m.ncols+col]
			queue = append(queue, t)
		}
	}
	return m
}

// find calls fn with the start and keyword id of every occurrence in b,
// in order of their ends, and returns the length of the longest suffix of
// b that is the start of a keyword (where one may still complete).
func (m *keywordMatcher) find(b []byte, fn func(start, kw int)) int {
	s := int32(0)
	for i := 0; i < len(b); i++ {
		s = m.next[int(s)*m.ncols+int(m.class[b[i]])]
		if out := m.out[s]; out != nil {
			for _, id := range out {
				fn(i+1-len(m.words[id]), int(id))
			}
		}
	}
	return int(m.depth[s])
}
