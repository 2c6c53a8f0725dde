//go:build !race

package detect

const raceOn = false
