package ssh_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
	_ "github.com/tollgate-dev/tollgate/protocols/ssh"
)

const sshConfig = `
[[targets]]
name = "web"
protocol = "ssh"
upstream = "127.0.0.1:22"
known_hosts = ["127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]
sftp = true
sftp_mask = true
[targets.credential]
type = "key"
username = "deploy"
value = "env:WEB_KEY"

[[listeners]]
name = "ssh"
protocol = "ssh"
listen = "127.0.0.1:2222"
max_sessions = 4
allow_env = ["LANG", "LC_*"]

[[access]]
name = "all"
targets = ["web"]
`

// gateway.toml's ssh tables decode through the registry: a good one
// parses, and each mistake is a problem at its place.
func TestSSHConfig(t *testing.T) {
	if _, err := config.Parse("gateway.toml", []byte(sshConfig), t.TempDir()); err != nil {
		t.Fatalf("a good ssh config: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"no host key pinned", `known_hosts = ["127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]`, ``, "known_hosts: list the upstream's host key"},
		{"a URL upstream", `upstream = "127.0.0.1:22"`, `upstream = "ssh://web"`, "upstream: must be host:port"},
		{"a bearer credential", `type = "key"`, `type = "bearer"`, "credential.type: must be key"},
		{"a key without its value", `value = "env:WEB_KEY"`, ``, "credential.value"},
		{"a login that is no login", `username = "deploy"`, `username = "de ploy"`, "is not a login name"},
		{"sessions out of range", `max_sessions = 4`, `max_sessions = 0`, "max_sessions: must be between 1 and 1000"},
		{"an http key", `max_sessions = 4`, `read_header_timeout = "5s"`, "read_header_timeout"},
		{"a variable that is no name", `allow_env = ["LANG", "LC_*"]`, `allow_env = ["LANG=C"]`, `allow_env[0]: "LANG=C" is not a variable name`},
		{"sftp that is no boolean", `sftp = true`, `sftp = "yes"`, "sftp"},
		{"sftp_mask without sftp", "sftp = true\nsftp_mask = true", `sftp_mask = true`, "sftp_mask: masks what sftp reads: set sftp = true as well"},
		{"a TLS certificate", `max_sessions = 4`, "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"", "not a TLS certificate"},
		{"the CA is the host key", `max_sessions = 4`, "host_key = \"k\"\nca_key = \"k\"", "ca_key: the user CA needs a key of its own"},
		{"an advertise without port", `max_sessions = 4`, `advertise = "ssh.example.com"`, "advertise: must be host:port"},
		{"a certificate TTL out of range", `max_sessions = 4`, `max_certificate_ttl = "48h"`, "max_certificate_ttl: must be between"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(sshConfig, tc.from, tc.to, 1)
			_, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
			var ps config.Problems
			if !errors.As(err, &ps) || !strings.Contains(ps.Error(), tc.want) {
				t.Fatalf("want a problem with %q, got %v", tc.want, err)
			}
			if !strings.Contains(ps.Error(), "gateway.toml:") {
				t.Errorf("no position: %v", ps)
			}
		})
	}
}
