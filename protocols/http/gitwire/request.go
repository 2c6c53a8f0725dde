package gitwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ZeroID is the object id git writes for "no object" (a created or
// deleted ref) in SHA-1 repositories; ValidID also accepts SHA-256's.
const ZeroID = "0000000000000000000000000000000000000000"

// ValidID reports whether s is a lower-case hex object id (SHA-1 or SHA-256).
func ValidID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IsZero reports whether id is all zeros.
func IsZero(id string) bool { return strings.Trim(id, "0") == "" }

// UploadRequest is one upload-pack POST: a protocol v0 negotiation round
// (wants, then haves and done) or a protocol v2 command (ls-refs, fetch).
type UploadRequest struct {
	Version  int    // 0 or 2 (v1 requests look like v0)
	Command  string // v2: ls-refs, fetch, object-info...; v0: "fetch"
	Wants    []string
	WantRefs []string // v2 want-ref arguments
	Haves    int
	Done     bool
	Caps     []string // v0: the first want's capabilities; v2: capability lines
	Args     []string // v2 arguments other than want/want-ref/have/done (ref-prefix, filter, deepen...)
	Shallow  []string // v0 shallow and deepen lines
}

// ParseUploadRequest parses a whole upload-pack request body of protocol
// version v (the client's Git-Protocol header).
func ParseUploadRequest(r io.Reader, v int) (*UploadRequest, error) {
	pr := NewPktReader(r)
	if v == 2 {
		return parseV2(pr)
	}
	return parseV0(pr)
}

func parseV0(pr *PktReader) (*UploadRequest, error) {
	req := &UploadRequest{Version: 0, Command: "fetch"}
	flushes := 0
	for {
		t, b, err := pr.Next()
		if err == io.EOF {
			if flushes == 0 && len(req.Wants) == 0 {
				return nil, fmt.Errorf("%w: empty upload-pack request", ErrMalformed)
			}
			return req, nil
		}
		if err != nil {
			return nil, err
		}
		switch t {
		case PktFlush:
			flushes++
			continue
		case PktData:
		default:
			return nil, fmt.Errorf("%w: unexpected special packet in a protocol v0 request", ErrMalformed)
		}
		line := string(trimLF(b))
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "want":
			id, caps, _ := strings.Cut(rest, " ")
			if !ValidID(id) {
				return nil, fmt.Errorf("%w: want %q is not an object id", ErrMalformed, printable([]byte(id)))
			}
			if len(req.Wants) == 0 && caps != "" {
				req.Caps = strings.Fields(caps)
			}
			req.Wants = append(req.Wants, id)
		case "have":
			if !ValidID(rest) {
				return nil, fmt.Errorf("%w: have %q is not an object id", ErrMalformed, printable([]byte(rest)))
			}
			req.Haves++
		case "done":
			req.Done = true
		case "shallow", "deepen", "deepen-since", "deepen-not", "deepen-relative", "filter":
			req.Shallow = append(req.Shallow, line)
		default:
			return nil, fmt.Errorf("%w: unknown upload-pack line %q", ErrMalformed, printable([]byte(oneLine(line, 80))))
		}
	}
}

func parseV2(pr *PktReader) (*UploadRequest, error) {
	req := &UploadRequest{Version: 2}
	inArgs := false
	for {
		t, b, err := pr.Next()
		if err == io.EOF {
			if req.Command == "" {
				return nil, fmt.Errorf("%w: empty protocol v2 request", ErrMalformed)
			}
			return nil, fmt.Errorf("%w: protocol v2 request ends without a flush", ErrMalformed)
		}
		if err != nil {
			return nil, err
		}
		switch t {
		case PktFlush:
			if req.Command == "" {
				return nil, fmt.Errorf("%w: protocol v2 request without a command", ErrMalformed)
			}
			return req, nil
		case PktDelim:
			if inArgs || req.Command == "" {
				return nil, fmt.Errorf("%w: misplaced delimiter in a protocol v2 request", ErrMalformed)
			}
			inArgs = true
			continue
		case PktResponseEnd:
			return nil, fmt.Errorf("%w: response-end packet in a request", ErrMalformed)
		}
		line := string(trimLF(b))
		if req.Command == "" {
			cmd, ok := strings.CutPrefix(line, "command=")
			if !ok || cmd == "" {
				return nil, fmt.Errorf("%w: protocol v2 request starts with %q, not command=", ErrMalformed, printable([]byte(oneLine(line, 80))))
			}
			req.Command = cmd
			continue
		}
		if !inArgs {
			req.Caps = append(req.Caps, line)
			continue
		}
		verb, rest, _ := strings.Cut(line, " ")
		switch {
		case req.Command == "fetch" && verb == "want":
			if !ValidID(rest) {
				return nil, fmt.Errorf("%w: want %q is not an object id", ErrMalformed, printable([]byte(rest)))
			}
			req.Wants = append(req.Wants, rest)
		case req.Command == "fetch" && verb == "want-ref":
			req.WantRefs = append(req.WantRefs, rest)
		case req.Command == "fetch" && verb == "have":
			if !ValidID(rest) {
				return nil, fmt.Errorf("%w: have %q is not an object id", ErrMalformed, printable([]byte(rest)))
			}
			req.Haves++
		case req.Command == "fetch" && line == "done":
			req.Done = true
		default:
			req.Args = append(req.Args, line)
		}
	}
}

// Command is one line of a push's command list.
type Command struct {
	Old, New, Ref string
}

// Action is what the command does to its ref: create, delete or update.
func (c Command) Action() string {
	switch {
	case IsZero(c.Old):
		return "create"
	case IsZero(c.New):
		return "delete"
	}
	return "update"
}

// PushRequest is the start of a receive-pack POST: the commands, the
// client's capabilities and its push options. The pack follows.
type PushRequest struct {
	Commands []Command
	Caps     []string
	Options  []string
	// Head is the bytes the command list and the push options took, as
	// sent, to forward unchanged before the pack.
	Head []byte
}

// HasCap reports whether the client asked for capability c.
func (p *PushRequest) HasCap(c string) bool {
	for _, have := range p.Caps {
		if have == c || strings.HasPrefix(have, c+"=") {
			return true
		}
	}
	return false
}

// ParsePushRequest reads a receive-pack request's command list (and its
// push options, when the client asked for push-options) from pr, at most
// limit bytes of it. pr is left at the start of the pack.
func ParsePushRequest(pr *PktReader, limit int64) (*PushRequest, error) {
	req := &PushRequest{}
	var head bytes.Buffer
	add := func(t PktType, b []byte) {
		if t == PktFlush {
			head.WriteString("0000")
			return
		}
		head.WriteString(fmt.Sprintf("%04x", len(b)+4))
		head.Write(b)
	}
	for {
		t, b, err := pr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the command list ends without a flush", ErrMalformed)
		}
		if err != nil {
			return nil, err
		}
		if pr.Consumed() > limit {
			return nil, fmt.Errorf("%w: the command list is over %d bytes", ErrMalformed, limit)
		}
		add(t, b)
		if t == PktFlush {
			break
		}
		if t != PktData {
			return nil, fmt.Errorf("%w: special packet in the command list", ErrMalformed)
		}
		line := trimLF(b)
		if len(req.Commands) == 0 {
			var caps []byte
			line, caps, _ = bytes.Cut(line, []byte{0})
			req.Caps = strings.Fields(string(caps))
		} else if bytes.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("%w: NUL in a command line after the first", ErrMalformed)
		}
		if bytes.HasPrefix(line, []byte("shallow ")) {
			continue
		}
		c, err := parseCommand(string(line))
		if err != nil {
			return nil, err
		}
		req.Commands = append(req.Commands, c)
	}
	if len(req.Commands) == 0 {
		return nil, fmt.Errorf("%w: a push without commands", ErrMalformed)
	}
	if req.HasCap("push-options") {
		for {
			t, b, err := pr.Next()
			if err == io.EOF {
				return nil, fmt.Errorf("%w: the push options end without a flush", ErrMalformed)
			}
			if err != nil {
				return nil, err
			}
			if pr.Consumed() > limit {
				return nil, fmt.Errorf("%w: the push options are over %d bytes", ErrMalformed, limit)
			}
			add(t, b)
			if t == PktFlush {
				break
			}
			if t != PktData {
				return nil, fmt.Errorf("%w: special packet in the push options", ErrMalformed)
			}
			req.Options = append(req.Options, string(trimLF(b)))
		}
	}
	req.Head = head.Bytes()
	return req, nil
}

func parseCommand(line string) (Command, error) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || !ValidID(f[0]) || !ValidID(f[1]) || len(f[0]) != len(f[1]) {
		return Command{}, fmt.Errorf("%w: command %q is not <old-id> <new-id> <ref>", ErrMalformed, printable([]byte(oneLine(line, 120))))
	}
	ref := f[2]
	if !validRef(ref) {
		return Command{}, fmt.Errorf("%w: %q is not a valid ref name", ErrMalformed, printable([]byte(oneLine(ref, 120))))
	}
	if IsZero(f[0]) && IsZero(f[1]) {
		return Command{}, fmt.Errorf("%w: command for %s has neither an old nor a new id", ErrMalformed, ref)
	}
	return Command{Old: f[0], New: f[1], Ref: ref}, nil
}

// validRef is git's check-ref-format for a full ref name, as far as a
// rule matching refs needs: refs/..., no control characters, spaces,
// "..", "@{", "//", trailing "/", ".lock" or "." components, and none of
// ~^:?*[\.
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//") || ref == "@" {
		return false
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	for _, comp := range strings.Split(ref, "/") {
		if comp == "" || comp[0] == '.' || strings.HasSuffix(comp, ".lock") {
			return false
		}
	}
	return true
}

// Ref is one advertised ref.
type Ref struct{ ID, Name string }

// Advertisement is an info/refs answer.
type Advertisement struct {
	Service string // git-upload-pack or git-receive-pack
	Version int
	Refs    []Ref
	Caps    []string
}

// ParseAdvertisement reads a smart HTTP info/refs body: "# service=..."
// and a flush, then either protocol v2's capability list or v0's refs
// (capabilities after a NUL on the first).
func ParseAdvertisement(r io.Reader) (*Advertisement, error) {
	pr := NewPktReader(r)
	a := &Advertisement{}
	t, b, err := pr.Next()
	if err != nil {
		return nil, fmt.Errorf("advertisement: %w", err)
	}
	svc, ok := strings.CutPrefix(string(trimLF(b)), "# service=")
	if t != PktData || !ok {
		return nil, fmt.Errorf("%w: advertisement does not start with # service=", ErrMalformed)
	}
	a.Service = svc
	if t, _, err = pr.Next(); err != nil || t != PktFlush {
		return nil, fmt.Errorf("%w: no flush after the service line", ErrMalformed)
	}
	for first := true; ; first = false {
		t, b, err := pr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: advertisement ends without a flush", ErrMalformed)
			}
			return nil, err
		}
		if t == PktFlush {
			return a, nil
		}
		if t != PktData {
			return nil, fmt.Errorf("%w: special packet in an advertisement", ErrMalformed)
		}
		line := trimLF(b)
		if first && string(line) == "version 2" {
			a.Version = 2
			continue
		}
		if a.Version == 2 {
			a.Caps = append(a.Caps, string(line))
			continue
		}
		line, caps, hasCaps := bytes.Cut(line, []byte{0})
		if first && hasCaps {
			a.Caps = strings.Fields(string(caps))
		}
		id, name, ok := strings.Cut(string(line), " ")
		if !ok || !ValidID(id) {
			return nil, fmt.Errorf("%w: advertised ref %q", ErrMalformed, printable([]byte(oneLine(string(line), 120))))
		}
		if name != "capabilities^{}" {
			a.Refs = append(a.Refs, Ref{ID: id, Name: name})
		}
	}
}
