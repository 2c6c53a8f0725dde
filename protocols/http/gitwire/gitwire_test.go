package gitwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func pkts(lines ...string) []byte {
	var b []byte
	for _, l := range lines {
		switch l {
		case "0000":
			b = AppendFlush(b)
		case "0001":
			b = append(b, "0001"...)
		default:
			b, _ = AppendPkt(b, []byte(l))
		}
	}
	return b
}

const (
	idA = "1111111111111111111111111111111111111111"
	idB = "2222222222222222222222222222222222222222"
)

func TestPktReaderRejectsBadFraming(t *testing.T) {
	for name, in := range map[string]string{
		"not hex":   "00zzabcd",
		"reserved":  "0003",
		"too long":  "fff1" + strings.Repeat("x", 65520),
		"truncated": "0010abc",
	} {
		_, _, err := NewPktReader(strings.NewReader(in)).Next()
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if name != "truncated" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", name, err)
		}
		if name == "truncated" && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated: %v", err)
		}
	}
	// The largest legal packet passes.
	big, _ := AppendPkt(nil, bytes.Repeat([]byte("x"), MaxPktData))
	if typ, b, err := NewPktReader(bytes.NewReader(big)).Next(); err != nil || typ != PktData || len(b) != MaxPktData {
		t.Fatalf("max packet: %v %d", err, len(b))
	}
	if _, err := AppendPkt(nil, make([]byte, MaxPktData+1)); err == nil {
		t.Fatal("AppendPkt accepted an oversized payload")
	}
}

func TestUploadRequestV0AndV2(t *testing.T) {
	v0 := pkts("want "+idA+" multi_ack_detailed side-band-64k ofs-delta\n", "want "+idB+"\n", "0000", "have "+idB+"\n", "done\n")
	r, err := ParseUploadRequest(bytes.NewReader(v0), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Wants) != 2 || r.Wants[0] != idA || r.Haves != 1 || !r.Done || len(r.Caps) != 3 {
		t.Fatalf("v0: %+v", r)
	}
	v2 := pkts("command=fetch\n", "agent=git/2.39\n", "object-format=sha1\n", "0001", "thin-pack\n", "want "+idA+"\n", "want-ref refs/heads/main\n", "done\n", "0000")
	r, err = ParseUploadRequest(bytes.NewReader(v2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Command != "fetch" || r.Version != 2 || len(r.Wants) != 1 || r.WantRefs[0] != "refs/heads/main" || !r.Done || len(r.Caps) != 2 || r.Args[0] != "thin-pack" {
		t.Fatalf("v2: %+v", r)
	}
	ls := pkts("command=ls-refs\n", "0001", "peel\n", "ref-prefix refs/heads/\n", "0000")
	if r, err = ParseUploadRequest(bytes.NewReader(ls), 2); err != nil || r.Command != "ls-refs" || len(r.Args) != 2 {
		t.Fatalf("ls-refs: %+v %v", r, err)
	}
	for name, bad := range map[string][]byte{
		"v0 bad id":       pkts("want xyz\n", "0000"),
		"v0 unknown verb": pkts("gimme "+idA+"\n", "0000"),
		"v0 empty":        nil,
		"v2 no command":   pkts("agent=x\n", "0000"),
		"v2 no flush":     pkts("command=fetch\n", "0001", "want "+idA+"\n"),
		"v2 two delims":   pkts("command=fetch\n", "0001", "0001", "0000"),
	} {
		v := 0
		if strings.HasPrefix(name, "v2") {
			v = 2
		}
		if _, err := ParseUploadRequest(bytes.NewReader(bad), v); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestPushRequest(t *testing.T) {
	body := pkts(ZeroID+" "+idA+" refs/heads/new\x00report-status side-band-64k push-options agent=git/2.39\n",
		idA+" "+idB+" refs/heads/main\n", idB+" "+ZeroID+" refs/heads/old\n", "0000", "ci.skip\n", "0000")
	body = append(body, "PACK..."...)
	pr := NewPktReader(bytes.NewReader(body))
	req, err := ParsePushRequest(pr, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Commands) != 3 || req.Commands[0].Action() != "create" || req.Commands[1].Action() != "update" || req.Commands[2].Action() != "delete" {
		t.Fatalf("commands %+v", req.Commands)
	}
	if !req.HasCap("side-band-64k") || !req.HasCap("agent") || req.HasCap("atomic") || len(req.Options) != 1 || req.Options[0] != "ci.skip" {
		t.Fatalf("caps %v options %v", req.Caps, req.Options)
	}
	if !bytes.Equal(req.Head, body[:len(body)-len("PACK...")]) {
		t.Fatalf("head %q", req.Head)
	}
	rest, _ := io.ReadAll(pr.Buffered())
	if string(rest) != "PACK..." {
		t.Fatalf("pack left %q", rest)
	}
	for name, bad := range map[string][]byte{
		"bad ref":        pkts(idA + " " + idB + " refs/heads/a..b\x00report-status\n"),
		"not refs/":      pkts(idA + " " + idB + " main\n"),
		"no flush":       pkts(idA + " " + idB + " refs/heads/main\n"),
		"both zero":      pkts(ZeroID+" "+ZeroID+" refs/heads/x\n", "0000"),
		"short id":       pkts(idA[:10]+" "+idB+" refs/heads/main\n", "0000"),
		"nul later":      pkts(idA+" "+idB+" refs/heads/a\n", idA+" "+idB+" refs/heads/b\x00x\n", "0000"),
		"empty":          pkts("0000"),
		"delim in list":  pkts(idA+" "+idB+" refs/heads/a\n", "0001", "0000"),
		"options cut":    pkts(idA+" "+idB+" refs/heads/a\x00push-options\n", "0000", "x\n"),
		"space in ref":   pkts(idA+" "+idB+" refs/heads/a b\n", "0000"),
		"lock component": pkts(idA+" "+idB+" refs/heads/a.lock\n", "0000"),
	} {
		if _, err := ParsePushRequest(NewPktReader(bytes.NewReader(bad)), 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// The limit holds for a command list that never ends.
	long := bytes.Repeat(pkts(idA+" "+idB+" refs/heads/"+strings.Repeat("x", 200)+"\n"), 100)
	if _, err := ParsePushRequest(NewPktReader(bytes.NewReader(long)), 4096); err == nil || !strings.Contains(err.Error(), "over 4096") {
		t.Fatalf("limit: %v", err)
	}
}

func TestReportInSideband(t *testing.T) {
	out := Report("", []RefStatus{{Ref: "refs/heads/main", Reason: "protected\nbranch"}, {Ref: "refs/heads/x"}}, true)
	pr := NewPktReader(bytes.NewReader(out))
	var inner []byte
	for {
		typ, b, err := pr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if typ == PktFlush {
			break
		}
		if b[0] != 1 {
			t.Fatalf("band %d", b[0])
		}
		inner = append(inner, b[1:]...)
	}
	var lines []string
	ir := NewPktReader(bytes.NewReader(inner))
	for {
		typ, b, err := ir.Next()
		if err != nil {
			t.Fatal(err)
		}
		if typ == PktFlush {
			break
		}
		lines = append(lines, string(b))
	}
	want := []string{"unpack ok\n", "ng refs/heads/main protected branch\n", "ok refs/heads/x\n"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("report %q", lines)
	}
}

func TestAdvertisement(t *testing.T) {
	body := pkts("# service=git-upload-pack\n", "0000", idA+" HEAD\x00multi_ack side-band-64k\n", idA+" refs/heads/main\n", "0000")
	a, err := ParseAdvertisement(bytes.NewReader(body))
	if err != nil || a.Service != "git-upload-pack" || len(a.Refs) != 2 || len(a.Caps) != 2 {
		t.Fatalf("%+v %v", a, err)
	}
	v2 := pkts("# service=git-upload-pack\n", "0000", "version 2\n", "ls-refs=unborn\n", "fetch=shallow\n", "0000")
	if a, err = ParseAdvertisement(bytes.NewReader(v2)); err != nil || a.Version != 2 || len(a.Caps) != 2 {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := ParseAdvertisement(bytes.NewReader(pkts("hello\n"))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad: %v", err)
	}
}

// Fuzz targets: no input panics, and what parses obeys the limits.

func FuzzPktLine(f *testing.F) {
	f.Add(pkts("want "+idA+" ofs-delta\n", "0000", "done\n"))
	f.Add([]byte("0000000100020004"))
	f.Add([]byte("fff0abc"))
	f.Add([]byte("00zz"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pr := NewPktReader(bytes.NewReader(in))
		for {
			typ, b, err := pr.Next()
			if err != nil {
				break
			}
			if len(b) > MaxPktData || (typ != PktData && b != nil) {
				t.Fatalf("packet %d of %d bytes", typ, len(b))
			}
		}
		for v := range 3 {
			if r, err := ParseUploadRequest(bytes.NewReader(in), v); err == nil {
				for _, w := range r.Wants {
					if !ValidID(w) {
						t.Fatalf("want %q accepted", w)
					}
				}
			}
		}
		ParseAdvertisement(bytes.NewReader(in))
	})
}

func FuzzCommandList(f *testing.F) {
	f.Add(pkts(ZeroID+" "+idA+" refs/heads/new\x00report-status side-band-64k push-options\n", idA+" "+idB+" refs/heads/main\n", "0000", "opt\n", "0000"))
	f.Add(pkts(idA + " " + idB + " refs/heads/main\n"))
	f.Add([]byte("0000"))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ParsePushRequest(NewPktReader(bytes.NewReader(in)), 64<<10)
		if err != nil {
			return
		}
		// What is forwarded (Head, re-encoded) parses to the same commands.
		again, err := ParsePushRequest(NewPktReader(bytes.NewReader(req.Head)), 64<<10)
		if err != nil || len(again.Commands) != len(req.Commands) || len(again.Options) != len(req.Options) {
			t.Fatalf("head %q does not parse back: %v", req.Head, err)
		}
		for _, c := range req.Commands {
			if !ValidID(c.Old) || !ValidID(c.New) || !validRef(c.Ref) || strings.ContainsAny(c.Ref, " \n\x00") {
				t.Fatalf("command %+v accepted", c)
			}
		}
		Report("", []RefStatus{{Ref: req.Commands[0].Ref, Reason: string(in)}}, true)
	})
}
