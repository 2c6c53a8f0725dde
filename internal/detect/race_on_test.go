//go:build race

package detect

// raceOn: the race detector slows the property tests tenfold; they take a
// sample of their cases under it (make test runs them whole without it).
const raceOn = true
