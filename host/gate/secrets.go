package gate

import (
	"sync"

	"github.com/tollgate-dev/tollgate/internal/detect"
)

// SecretFinding is a secret a SecretScanner found: its kind (the
// detector's name, e.g. pem_private_key or a gitleaks rule id) and its
// byte span in the scanned text.
type SecretFinding struct {
	Kind       string
	Start, End int
}

// SecretScanner finds secrets in content a protocol inspects itself
// rather than through a plugin (the files of a pushed pack): the host's
// detectors of the "secrets" group (every gitleaks rule, passwords in
// assignments and URLs, AWS secret keys) plus private keys and the cloud
// and forge tokens the builtins know. Safe for concurrent use.
type SecretScanner struct{ set *detect.Set }

var (
	scannerOnce sync.Once
	scanner     *SecretScanner
	scannerErr  error
)

// SecretDetectors are the detector names a SecretScanner runs.
var SecretDetectors = []string{detect.KindPEM, detect.KindAWSAccess, detect.KindGitHub, detect.KindGitLab, detect.KindSlack, detect.GroupSecrets}

// Secrets returns the shared SecretScanner, built on first use (the
// gitleaks rules take a moment to compile).
func Secrets() (*SecretScanner, error) {
	scannerOnce.Do(func() {
		ds, err := detect.Resolve(SecretDetectors)
		if err != nil {
			scannerErr = err
			return
		}
		scanner = &SecretScanner{set: detect.NewSet(ds...)}
	})
	return scanner, scannerErr
}

// Find returns the secrets in b, in order.
func (s *SecretScanner) Find(b []byte) []SecretFinding {
	spans := s.set.Find(b, nil)
	out := make([]SecretFinding, len(spans))
	for i, sp := range spans {
		out[i] = SecretFinding{Kind: sp.Kind, Start: sp.Start, End: sp.End}
	}
	return out
}
