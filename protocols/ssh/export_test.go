package ssh

import "github.com/tollgate-dev/tollgate/host/gate"

// ScrubForTest makes target blank secret in output as it does its
// password: the test sshd takes keys only, so the wiring is tested with
// a key target.
func ScrubForTest(l *Listener, target, secret string) {
	l.targets[target].scrub.Store(gate.NewScrubber([]string{secret}))
}
