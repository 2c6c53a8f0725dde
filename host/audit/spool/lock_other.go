//go:build !unix

package spool

import "os"

// lockDir opens dir/LOCK; without flock(2) it does not exclude other
// processes.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
