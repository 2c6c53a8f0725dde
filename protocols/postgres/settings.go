package postgres

import (
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Settings that change how statement text reads
//
// The guard splits and classifies statement text byte by byte. Two
// settings make the server read the same bytes differently: a client-only
// encoding (SJIS, BIG5, GBK, UHC, GB18030, JOHAB), where a backslash or
// other ASCII byte can be the second half of a character, and
// standard_conforming_strings = off, where a backslash escapes a quote in
// an ordinary string. The gateway keeps a session in the encodings whose
// multibyte characters have no ASCII bytes, with standard_conforming_strings
// on:
//
//   - a SET, SET NAMES or set_config that asks for anything else is
//     refused before it reaches the server (0A000);
//   - the server reports both settings (ParameterStatus) whenever they
//     change, however they were changed (a function, a DO block, RESET,
//     a role default): a report of anything else ends the session at once;
//   - a statement whose reading depends on them (it has a byte over 0x7F
//     or a backslash) is judged only once the server has answered
//     everything before it, so a change earlier in a pipeline has been
//     reported. In the extended protocol the server reports at Sync, so
//     such a Parse after an Execute in the same Sync segment is refused.

// unsafeSetting is why a ParameterStatus ends the session, or "".
func unsafeSetting(body []byte) string {
	var ps pgproto3.ParameterStatus
	if err := ps.Decode(body); err != nil {
		return "the target sent a malformed ParameterStatus"
	}
	return settingProblem(ps.Name, ps.Value)
}

func settingProblem(name, value string) string {
	if why := unsafeValue(name, value); why != "" {
		return "the session's " + name + " became " + value + ", " + why + "; the session is ended"
	}
	return ""
}

// unsafeValue says why value of setting name would make the gateway's
// policy misread statements, or "".
func unsafeValue(name, value string) string {
	switch name {
	case "client_encoding":
		if !asciiSafeEncoding(value) {
			return "an encoding whose characters can hide quote and backslash bytes from the gateway's policy"
		}
	case "standard_conforming_strings":
		if value != "on" {
			return "under which the gateway's policy would misread string literals"
		}
	}
	return ""
}

// textDependsOnSettings reports whether sql has a byte whose meaning
// depends on the encoding or on standard_conforming_strings.
func textDependsOnSettings(sql string) bool {
	for i := 0; i < len(sql); i++ {
		if c := sql[i]; c >= 0x80 || c == '\\' {
			return true
		}
	}
	return false
}

// textSafe decides whether statement text may be judged and sent now.
// ok false: it was not (refused, with an error queued for the client);
// alive false: the session is ending.
func (s *session) textSafe(sql string, parse bool) (ok, alive bool) {
	if why := settingRequest(sql); why != "" {
		s.refuseText(sql, why, parse)
		return false, true
	}
	if !textDependsOnSettings(sql) {
		return true, true
	}
	if parse && s.execInSeg {
		s.refuseText(sql, "a statement with a backslash or a non-ASCII byte cannot follow an Execute before Sync through this gateway: "+
			"the server reports a changed encoding only at Sync; send Sync first", parse)
		return false, true
	}
	if !s.settle() {
		return false, false
	}
	return true, true
}

// refuseText answers a refused Query or Parse with an error; a Parse
// makes the rest of its Sync segment skipped, as a server error would.
func (s *session) refuseText(sql, why string, parse bool) {
	st := &stmt{start: time.Now(), fields: map[string]string{"sql": sql}, reqSize: int64(len(sql))}
	st.verdict = event.Verdict{Action: event.Deny, Reason: why}
	st.err = "refused: " + why
	s.recordStmt(st)
	if parse {
		s.clientSkip = true
		s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", codeFeatureNotSupported, why, s.id)})
		return
	}
	s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", codeFeatureNotSupported, why, s.id), rfq: true})
}

// settingRequest looks for an explicit request to change one of the two
// settings to a value the gateway does not allow (SET, SET NAMES,
// set_config with literal arguments) and says why it is refused. Other
// ways of changing them are caught when the server reports the change.
func settingRequest(sql string) string {
	// Most statements name none of them: let them go without a
	// lower-case copy.
	if !mentionsSettingName(sql) {
		return ""
	}
	lower := strings.ToLower(sql)
	for _, name := range [...]string{"client_encoding", "names", "standard_conforming_strings"} {
		for i := 0; ; {
			j := strings.Index(lower[i:], name)
			if j < 0 {
				break
			}
			at := i + j
			i = at + len(name)
			if at > 0 && isWordByte(lower[at-1]) && lower[at-1] != '"' {
				continue
			}
			if name == "names" && !strings.HasSuffix(strings.TrimRight(lower[:at], " \t\r\n"), "set") {
				continue
			}
			v, ok := settingValueAfter(lower[i:], name == "names")
			if !ok {
				continue
			}
			canon := name
			if name == "names" {
				canon = "client_encoding"
			}
			if v == "default" {
				continue // back to the session's start, which was checked
			}
			if why := unsafeValue(canon, v); why != "" {
				return "changing " + canon + " to " + v + " is refused by this gateway: " + why
			}
		}
	}
	return ""
}

// mentionsSettingName reports whether sql may name one of the settings,
// case-insensitively.
func mentionsSettingName(sql string) bool {
	for _, w := range [...]string{"client_encoding", "names", "standard_conforming_strings"} {
		for i := 0; i+len(w) <= len(sql); i++ {
			if sql[i]|0x20 == w[0] && strings.EqualFold(sql[i:i+len(w)], w) {
				return true
			}
		}
	}
	return false
}

// settingValueAfter reads the value after a setting's name: `TO v`,
// `= v`, or for set_config `', 'v'`; for SET NAMES, the value directly.
func settingValueAfter(s string, names bool) (string, bool) {
	s = strings.TrimLeft(s, `" `+"\t\r\n")
	switch {
	case names:
	case strings.HasPrefix(s, "to") && len(s) > 2 && !isWordByte(s[2]):
		s = s[2:]
	case strings.HasPrefix(s, "="):
		s = s[1:]
	case strings.HasPrefix(s, "',"): // set_config('client_encoding', 'sjis', ...)
		s = s[2:]
	default:
		return "", false
	}
	s = strings.TrimLeft(s, " \t\r\n")
	if s == "" {
		return "", false
	}
	if s[0] == '\'' || s[0] == '"' {
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return "", false
		}
		return s[1 : 1+end], true
	}
	end := 0
	for end < len(s) && isWordByte(s[end]) {
		end++
	}
	if end == 0 {
		return "", false
	}
	return s[:end], true
}
