// Package ssh is Tollgate's SSH listener: agents run commands on servers
// through it with their OIDC token, and never hold the server's key.
//
// # Connecting
//
// The SSH user names the remote login and the target: "login@target", or
// the target alone, which takes the target's login, else the listener's
// default_login:
//
//	ssh -p 2222 -l deploy@prod-web gateway.example -- systemctl status app
//	ssh -p 2222 -l prod-web gateway.example -- uptime
//
// The keyboard-interactive answer (or the password) is the OIDC token;
// in CI, SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force hands it over
// without a terminal:
//
//	SSH_ASKPASS=examples/ssh/tollgate-askpass SSH_ASKPASS_REQUIRE=force \
//	  TOLLGATE_TOKEN=$TOKEN ssh ...
//
// OpenSSH keeps only 1023 bytes of an askpass answer (or of a line typed
// at a terminal), and OIDC tokens are often longer. When an answer is
// exactly 1023 bytes long, the gateway asks again, "OIDC token,
// continued from byte N:", until an answer is shorter; the shipped
// askpass script answers those prompts. The password method has one
// answer only, so it serves tokens up to 1023 bytes (a cut token is
// refused with that explanation).
//
// The gateway's host key (ed25519, created at host_key on first start)
// goes into the agent's known_hosts. A refusal at login (a bad or
// expired token, an unknown target, a login the rules do not allow, too
// many failures from the address) reaches the client as an SSH banner
// "tollgate: <reason>" before "Permission denied"; each failed attempt
// counts against the source address (max_auth_failures per
// auth_failure_window), and past the limit attempts fail at once.
//
// # Certificates
//
// The second way in is a short-lived user certificate signed by the
// listener's CA (ca_key, an ed25519 key made on first start). The
// gateway's API (the admin listener) issues it, to any token the
// verifier accepts, for the targets the access rules grant
// (certapi.go):
//
//	POST /v1/ssh/{listener}/certificate  {"public_key", "targets", "login"}, bearer token
//	GET  /v1/ssh/{listener}/ca           the CA's public key
//	POST /v1/ssh/{listener}/revoke       {"serial"}, a token in [admin] groups
//
// A certificate is valid from a minute ago until the token's exp (at
// most max_certificate_ttl); its principals are the target names (any
// login the rules allow at use) or login@target (with "login"); its
// extensions (ExtIssuer...) carry the issuer, subject, email, groups and
// claims, so that a login with it maps back to the Principal the token
// gave and the access rules are applied again, as they are now. At login
// (certauth.go) the publickey method accepts it when it is signed by the
// CA, names the target, is within its validity and its serial is not in
// revoked_serials (a file read again when it changes; unreadable: every
// certificate refused). A refusal is a banner "tollgate: certificate
// serial N: <reason>", counts against the source address, and writes a
// refused open row with cert_serial and no subject (x/crypto asks before
// the client has proved it holds the key). `gateway ssh login` writes
// the key, the certificate and an ssh_config for plain `ssh target`.
//
// # Access
//
// The access rules see Target = the target, Verb = "exec" or "shell" and
// Resource = "/" + login: a rule with paths = ["/deploy"] grants the
// login deploy only. A connection is admitted when some verb is granted
// for its login; each command is checked for "exec" again, each shell
// for "shell".
//
// # Commands
//
// Each exec request is an "ssh.exec" event (fields command, login, argv:
// Split's words as a JSON array, commands: SimpleCommands one per line,
// argv_error when the line does not split) decided by the chain before
// anything reaches the target. A
// deny prints "tollgate: denied: <reason>" on stderr and exits 126; a
// hold prints "tollgate: held for approval <id>: <url>" and waits, then
// runs or is refused the same way. An allowed command runs on the
// target over one upstream SSH connection per client connection, made
// with the gateway's key or password and checked against the target's
// known_hosts lines (an unknown or changed key is refused and named by
// its fingerprint; insecure_ignore_host_key skips the check and is
// logged as a warning on every connection). When the target cannot be
// reached the client reads why on stderr and the exit status is 255.
//
// stdin goes to the target as it is. stdout and stderr come back in
// chunks (up to 32 KiB), each an "ssh.output" event (fields data, fd,
// stream = "<channel>/<fd>", eos = "1" on the last) processed by the
// chain that decided the command, so redact's streaming masker (which
// keys its state by session, stream and field) catches a secret cut
// between chunks. A chunk the chain denies stops the command: the client
// reads "tollgate: output withheld: <reason>" and exit status 126. The
// exit-status or exit-signal request of the target is passed on byte for
// byte once all output is out. A password target's password is blanked
// with '*' wherever the output carries it (raw or base64, also when cut
// between reads), before any plugin sees it.
//
// # Shells
//
// A shell is an "ssh.shell" event (fields login, term, size, env,
// env_refused) decided like a command; pty-req, window-change, env
// (the names allow_env lists, of the listener or the target; others are
// refused silently, as OpenSSH does, and logged), signal and break go
// to the target, and the output comes back through pump as exec's does.
// Each line the user submits is an "ssh.input" event (fields line,
// login, argv, commands, argv_error, source, typed) decided before the
// line runs (input.go says how a line is read: the remote's echo on a
// terminal, whole lines held without one). A deny sends Ctrl-C (with a
// terminal) or drops the line (without), and prints "tollgate: denied:
// <reason>"; a hold prints the approval's URL and waits. With a terminal
// the denied line's keys are already in the remote's line, so after the
// Ctrl-C no further key goes until the remote shows a fresh prompt on a
// new line without the denied text (bash can keep a line through an
// interrupt that comes while it reads a paste, and the next line would
// run with it): Ctrl-C goes again, up to three times, and when no fresh
// prompt comes the gateway refuses each next line ("the shell showed no
// fresh prompt after a refused line...", a row with no plugin) until
// one does; until a line is allowed, a line whose echo holds the refused
// text while its keys do not is refused as well ("the shell's line still
// holds the text of a refused line..."). This is best effort (line
// editing, pastes, programs reading raw keys); exec is the mode to
// enforce with.
//
// # sftp
//
// On a target with sftp = true, the sftp subsystem is served to a
// principal granted the verb "sftp": an "ssh.subsystem" event decides
// it, then its packets are relayed one by one (sftp.go parses the few
// the audit needs), each file operation an "ssh.sftp" row (operation,
// path, to, flags, bytes). Uploads pass unchanged.
//
// With sftp_mask = true as well, file contents the client reads pass the
// chain (sftpmask.go). Each READ goes upstream widened by 8 KiB on both
// sides (read-ahead); the widened bytes are one "ssh.output" event
// (fields data, fd = "sftp", path, stream = "<channel>/sftp", eos = "1")
// and the client gets exactly the bytes it asked for, each byte the
// chain changed overwritten with '*'. So a reply keeps its length and
// every offset stays true whatever the strategy does to lengths (redact's
// "[REDACTED:kind]" and hash's digest never reach the client; partial's
// kept last four characters do). Each reply is checked on its own, with
// its 8 KiB on each side: a secret shorter than that which crosses a
// reply boundary is whole in both replies' windows, and parallel or
// out-of-order reads need no state between replies. A byte is given only
// with 8 KiB checked after it: the rest of a reply waits (a short reply,
// which the client asks again for), unless the upstream's answer was
// short and ends within 8 KiB of the read, which is the end of the file.
// The changed bytes are found by aligning the chain's output with the
// input (runs of 16 bytes or more; shorter runs between two changes are
// masked too). A chunk the chain denies, or no plugin that takes
// "ssh.output", fails the read (SSH_FX_FAILURE, "tollgate: file contents
// withheld: <reason>") and the row's error says why; so does a DATA
// answer to no widened read, and a read id reused while pending ends
// the session, so that no contents pass unchecked. The read's row
// counts sftp.masked_values and sftp.masked_bytes in what the client got;
// the plugins' own annotations are not summed, since the windows overlap.
//
// Other subsystems (and sftp elsewhere), port forwarding in both
// directions, X11 and agent forwarding are refused with a message (a stderr line and exit status
// 126 for subsystems, the channel rejection's text for forwarding), each
// with a row.
//
// # Audit
//
// One session per client connection: its session.open row (or, when
// login fails, a refused open row saying why, and its close row), one
// "ssh.exec" row per command (the fields as decided, verdict, plugin,
// approval, status "exit N" or "signal NAME" or "refused", stdin bytes as
// request_bytes, output bytes sent as response_bytes, the output chunks'
// annotations summed, duration), one "ssh.shell" row per shell (the same
// columns) and one "ssh.input" row per submitted line (status "sent" or
// "refused"), "ssh.channel" and "ssh.request" rows for what was refused,
// the terminal recording's "session.recording" chunks (gate.Recording:
// the output as the client received it, after the chain; stdin;
// window-change as resize events), and session.close. A session opened
// with a certificate has auth = "certificate", cert_serial and
// cert_key_id in its open row; each certificate issued is a session with
// one "ssh.certificate" row (serial, key_id, validity, principals, key
// fingerprint), each revocation one "ssh.revoke" row. The token and the
// target's credential appear in no row and no message.
package ssh
