package config

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a reference to a credential: "env:NAME" or "file:PATH". The
// value is read by [Config.ResolveSecrets] and is only ever returned by
// [Secret.Value]; String and MarshalText give the reference, so a Secret
// printed in a log or an error never leaks what it points at.
type Secret struct {
	Ref   string
	value string
}

func (s *Secret) UnmarshalText(b []byte) error { s.Ref = string(b); return nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(s.Ref), nil }
func (s Secret) String() string                { return s.Ref }

// IsSet reports whether a reference was written.
func (s Secret) IsSet() bool { return s.Ref != "" }

// Value is the resolved credential; empty before ResolveSecrets.
func (s Secret) Value() string { return s.value }

// checkRef validates the form of the reference without reading anything.
func (s Secret) checkRef() error {
	kind, rest, ok := strings.Cut(s.Ref, ":")
	switch {
	case !ok || (kind != "env" && kind != "file"):
		return fmt.Errorf("credentials are never written inline: use env:NAME or file:PATH")
	case rest == "":
		return fmt.Errorf("%s: reference is empty", kind)
	}
	return nil
}

// resolve reads the referenced value. baseDir anchors relative file paths.
func (s *Secret) resolve(resolvePath func(string) string) error {
	if err := s.checkRef(); err != nil {
		return err
	}
	kind, rest, _ := strings.Cut(s.Ref, ":")
	switch kind {
	case "env":
		v, ok := os.LookupEnv(rest)
		if !ok || v == "" {
			return fmt.Errorf("environment variable %s is not set", rest)
		}
		s.value = v
	case "file":
		b, err := os.ReadFile(resolvePath(rest))
		if err != nil {
			return fmt.Errorf("cannot read credential file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return fmt.Errorf("credential file %s is empty", rest)
		}
		s.value = v
	}
	return nil
}

// ResolveAuditSecrets reads only the audit store's credentials, for tools
// that read the audit trail and have no business with target credentials.
func (c *Config) ResolveAuditSecrets() error {
	var ps problemList
	for path, s := range map[string]*Secret{"audit.clickhouse.password": &c.Audit.ClickHouse.Password, "audit.signing_key": &c.Audit.SigningKey} {
		if s.IsSet() {
			if err := s.resolve(c.Path); err != nil {
				ps.add(path, "%v", err)
			}
		}
	}
	return c.src.problems(ps)
}

// ResolveSecrets reads every credential reference. It returns [Problems]
// naming each key whose secret is missing.
func (c *Config) ResolveSecrets() error {
	var ps problemList
	try := func(path string, s *Secret) {
		if !s.IsSet() {
			return
		}
		if err := s.resolve(c.Path); err != nil {
			ps.add(path, "%v", err)
		}
	}
	if c.Dev != nil {
		try("dev.echo_token", &c.Dev.EchoToken)
	}
	try("audit.clickhouse.password", &c.Audit.ClickHouse.Password)
	try("audit.signing_key", &c.Audit.SigningKey)
	if ap := c.Approvals; ap != nil {
		for i := range ap.Webhooks {
			try(fmt.Sprintf("approvals.webhooks[%d].url", i), &ap.Webhooks[i].URL)
		}
	}
	for i := range c.Targets {
		cr := &c.Targets[i].Credential
		p := fmt.Sprintf("targets[%d].credential", i)
		try(p+".token", &cr.Token)
		try(p+".password", &cr.Password)
		try(p+".value", &cr.Value)
	}
	return c.src.problems(ps)
}
