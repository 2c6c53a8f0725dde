// Package tollgate holds what belongs to the repository as a whole: the
// shipped gateway.toml, embedded so that `gateway serve` runs on its
// defaults from any directory.
package tollgate

import _ "embed"

// DefaultConfig is the repository's gateway.toml.
//
//go:embed gateway.toml
var DefaultConfig []byte
