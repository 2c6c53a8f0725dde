package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/protocols/http/gitwire"
)

// gitPush reads a push's command list, spools its pack to a temporary
// file (bounded by git_max_push_bytes), reads the pack (force check,
// secret scan), asks the chain about each command, and forwards the push
// unchanged only when every command is allowed. A refusal is git's own
// report-status: every ref of the push is refused, so a push is never
// half applied by the gateway.
func (x *exchange) gitPush(w *statusRecorder, r *http.Request, g gitOp) {
	x.kind = kindGitPush
	x.ev.Kind = kindGitPush
	body, err := x.gitBody(r)
	if err != nil {
		x.gitBadRequest(w, err)
		return
	}
	pr := gitwire.NewPktReader(body)
	if probe, err := pr.Buffered().Peek(5); string(probe) == "0000" && err == io.EOF {
		// git's probe before a large push (over http.postBuffer): a
		// flush alone, which checks that the push can be sent at all.
		x.ev.Fields["command"] = "probe"
		x.gitForward(w, r, strings.NewReader("0000"), 4, "application/x-git-receive-pack-request", nil, false)
		return
	}
	req, err := gitwire.ParsePushRequest(pr, maxGitCommandList)
	if err != nil {
		x.gitBadRequest(w, err)
		return
	}
	f := x.ev.Fields
	refs := make([]string, len(req.Commands))
	for i, c := range req.Commands {
		refs[i] = c.Ref
	}
	f["refs"] = strings.Join(refs, "\n")
	if len(req.Options) > 0 {
		f["options"] = strings.Join(req.Options, "\n")
	}
	sideband := req.HasCap("side-band-64k")
	pack, n, over, err := spool(pr.Buffered(), x.rt.up.gitMaxPush)
	if err != nil {
		if errors.Is(err, gitwire.ErrMalformed) || errors.Is(err, io.ErrUnexpectedEOF) {
			x.gitBadRequest(w, err)
			return
		}
		x.sess.Log().Warn("git push not spooled", "err", err)
		x.errMsg, x.status = "client: request body: "+err.Error(), 499
		return
	}
	defer func() {
		pack.Close()
		os.Remove(pack.Name())
	}()
	x.note("git.pack_bytes", strconv.FormatInt(n, 10))
	forces := make([]string, len(req.Commands))
	setCommands := func() {
		lines := make([]string, len(req.Commands))
		for i, c := range req.Commands {
			lines[i] = c.Old + " " + c.New + " " + c.Ref + " " + c.Action()
			if forces[i] != "" {
				lines[i] += " force=" + forces[i]
			}
		}
		f["commands"] = strings.Join(lines, "\n")
	}
	setCommands()
	if over {
		x.gitRefuse(w, req, sideband, "", nil, fmt.Sprintf("the push is larger than git_max_push_bytes (%d bytes)", x.rt.up.gitMaxPush))
		return
	}
	needPack := false
	for _, c := range req.Commands {
		if c.Action() != "delete" {
			needPack = true
		}
	}
	var pk *gitwire.Pack
	if needPack {
		if n == 0 {
			x.gitRefuse(w, req, sideband, "no pack data", nil, "unpacker error")
			return
		}
		pk, err = gitwire.OpenPack(pack.Name(), gitwire.DefaultMaxObject)
		if err != nil {
			x.sess.Log().Info("git push: pack refused", "err", err)
			x.errMsg = "pack: " + err.Error()
			x.gitRefuse(w, req, sideband, "the gateway cannot read the pack: "+err.Error(), nil, "unpacker error")
			return
		}
		defer pk.Close()
		x.note("git.pack_objects", strconv.Itoa(pk.Objects))
	}
	for i, c := range req.Commands {
		if c.Action() == "update" {
			forces[i] = x.gitForce(r, g, pk, c)
		}
	}
	setCommands()
	if x.rt.up.gitScan && pk != nil {
		tips := make([]string, 0, len(req.Commands))
		for _, c := range req.Commands {
			if c.Action() != "delete" {
				tips = append(tips, c.New)
			}
		}
		found, blobs, err := scanPack(pk, tips)
		switch {
		case err != nil:
			x.errMsg = "scan: " + err.Error()
			x.gitRefuse(w, req, sideband, "", nil, "the gateway could not scan the pushed files")
			return
		case found != "":
			x.note("git.scan", found)
			x.verdict = event.Verdict{Action: event.Deny, Reason: "push refused: " + found}
			x.gitRefuse(w, req, sideband, "", nil, "secret in pushed file: "+found)
			return
		}
		x.note("git.scan", fmt.Sprintf("clean (%d files)", blobs))
	}
	if sideband {
		x.progress = func(msg string) {
			x.gitStart(w)
			w.Write(gitwire.Sideband(nil, 2, []byte(msg)))
			w.Flush()
		}
	}
	reasons := map[string]string{}
	for i, c := range req.Commands {
		ev := &event.Event{
			Phase: event.Request, Protocol: "http", Kind: kindGitPush, SessionID: x.sess.ID(), Target: x.rt.cfg.Target, Principal: x.ev.Principal,
			Fields: map[string]string{
				"repository": g.repo, "path": g.repo, "ref": c.Ref, "old": c.Old, "new": c.New, "action": c.Action(),
				"force": forces[i], "options": f["options"], "protocol": f["protocol"],
			},
		}
		if ev.Fields["force"] == "" {
			ev.Fields["force"] = "false" // a create or a delete rewrites no history
		}
		dec := x.gitDecide(r, ev)
		if x.verdict.Action == event.Allow || (!dec.Allowed && len(reasons) == 0) {
			x.verdict = dec.Verdict
		}
		if !dec.Allowed {
			reasons[c.Ref] = dec.Reason
			if dec.Refusal == gate.RefusedAuditFull {
				break
			}
		}
	}
	if len(reasons) > 0 {
		x.gitRefuse(w, req, sideband, "", reasons, "not pushed: another ref of this push was refused")
		return
	}
	x.progress = nil
	head := bytes.NewReader(req.Head)
	x.gitForward(w, r, io.MultiReader(head, pack), int64(len(req.Head))+n, "application/x-git-receive-pack-request", nil, x.headerSent)
}

// gitRefuse answers a refused push with a report-status naming each ref:
// reasons[ref], or def. unpackErr, when set, is the unpack status.
func (x *exchange) gitRefuse(w *statusRecorder, req *gitwire.PushRequest, sideband bool, unpackErr string, reasons map[string]string, def string) {
	st := make([]gitwire.RefStatus, len(req.Commands))
	var first string
	for i, c := range req.Commands {
		reason := reasons[c.Ref]
		if reason == "" {
			reason = def
		}
		st[i] = gitwire.RefStatus{Ref: c.Ref, Reason: reason}
		if first == "" && reasons[c.Ref] != "" {
			first = c.Ref + ": " + reason
		}
	}
	if first == "" {
		first = def
		if unpackErr != "" {
			first = "unpack: " + unpackErr
		}
	}
	if x.errMsg == "" {
		x.errMsg = "rejected: " + first
	}
	x.rowStatus = "rejected"
	x.progress = nil
	x.gitStart(w)
	w.Write(gitwire.Report(unpackErr, st, sideband))
}

// gitForce says whether an update rewrites history: "false" when the old
// id is an ancestor of the new one, "true" when it is not, "unknown"
// when that cannot be told. The pushed pack holds the new commits; where
// the walk through them leaves the pack, the upstream is asked.
func (x *exchange) gitForce(r *http.Request, g gitOp, pk *gitwire.Pack, c gitwire.Command) string {
	if pk == nil {
		return "unknown"
	}
	found, boundary := pk.Walk(c.New, c.Old, 16)
	if found {
		return "false"
	}
	if len(boundary) == 0 {
		return "true" // the pack holds all of new's history, and old is not in it
	}
	for _, b := range boundary {
		anc, err := x.upstreamAncestor(r, g, c.Old, b)
		if err != nil {
			x.sess.Log().Info("git push: force check failed", "ref", c.Ref, "err", err)
			return "unknown"
		}
		if anc {
			return "false"
		}
	}
	return "true"
}

// upstreamAncestor asks the upstream whether old is an ancestor of b (a
// commit it has): an upload-pack request for old, which is the ref's tip
// and so may be asked for, with b as what we have. The pack it answers
// holds old itself exactly when old is not reachable from b.
func (x *exchange) upstreamAncestor(r *http.Request, g gitOp, old, b string) (bool, error) {
	if old == b {
		return true, nil
	}
	var body []byte
	body, _ = gitwire.AppendPkt(body, []byte("want "+old+" ofs-delta no-progress\n"))
	body = gitwire.AppendFlush(body)
	body, _ = gitwire.AppendPkt(body, []byte("have "+b+"\n"))
	body, _ = gitwire.AppendPkt(body, []byte("done\n"))
	u := *x.rt.up.url
	u.Path = singleJoin(x.rt.up.url.Path, g.repo+"/git-upload-pack")
	u.RawPath, u.RawQuery = "", ""
	out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("ancestry: %w", err)
	}
	out.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	out.Header.Set("Accept", "application/x-git-upload-pack-result")
	out.Header.Set("X-Tollgate-Session-Id", x.sess.ID())
	x.rt.up.inject(out.Header)
	resp, err := x.rt.up.transport.RoundTrip(out)
	if err != nil {
		return false, fmt.Errorf("ancestry: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("ancestry: upstream status %s", resp.Status)
	}
	pr := gitwire.NewPktReader(resp.Body)
	for {
		t, line, err := pr.Next()
		if err != nil {
			return false, fmt.Errorf("ancestry: %w", err)
		}
		if t != gitwire.PktData {
			continue
		}
		s := string(line)
		if strings.HasPrefix(s, "ERR ") {
			return false, fmt.Errorf("ancestry: upstream: %s", strings.TrimSpace(s))
		}
		if strings.HasPrefix(s, "NAK") || strings.HasPrefix(s, "ACK ") {
			break
		}
	}
	f, _, over, err := spool(pr.Buffered(), maxAncestryPack)
	if err != nil {
		return false, fmt.Errorf("ancestry: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if over {
		return false, fmt.Errorf("ancestry: the upstream's answer is over %d bytes", maxAncestryPack)
	}
	pk, err := gitwire.OpenPack(f.Name(), gitwire.DefaultMaxObject)
	if err != nil {
		return false, fmt.Errorf("ancestry: %w", err)
	}
	defer pk.Close()
	return !pk.HasCommit(old), nil
}

// scanPack runs the secret detectors over every blob of the pack, in
// windows of scanWindow bytes that overlap by scanOverlap, and returns
// the first finding as "<kind> in <path> line <n>", and the number of
// blobs scanned.
func scanPack(pk *gitwire.Pack, tips []string) (string, int, error) {
	sc, err := gate.Secrets()
	if err != nil {
		return "", 0, err
	}
	paths := pk.BlobPaths(tips)
	buf := make([]byte, scanWindow+scanOverlap)
	for i, id := range pk.Blobs() {
		path, ok := paths[id]
		if !ok {
			path = "blob " + id
		}
		rc, _, err := pk.Blob(id)
		if err != nil {
			return "", i, err
		}
		found, err := scanBlob(sc, rc, buf)
		rc.Close()
		if err != nil {
			return "", i, fmt.Errorf("blob %s: %w", id, err)
		}
		if found != "" {
			return fmt.Sprintf(found, path), i + 1, nil
		}
	}
	return "", len(pk.Blobs()), nil
}

const (
	scanWindow  = 1 << 20
	scanOverlap = 16 << 10 // longer than any key a detector finds whole (a PEM RSA 4096 key is ~3.3 KiB)
)

// scanBlob scans one blob; a finding comes back as "<kind> in %s line
// <n>", the path left to the caller.
func scanBlob(sc *gate.SecretScanner, r io.Reader, buf []byte) (string, error) {
	keep := 0  // bytes at the front of buf carried over from the last window
	lines := 1 // line number of buf[0]
	for {
		n, err := io.ReadFull(r, buf[keep:])
		end := keep + n
		if end > 0 {
			if fs := sc.Find(buf[:end]); len(fs) > 0 {
				return fmt.Sprintf("%s in %%s line %d", fs[0].Kind, lines+bytes.Count(buf[:fs[0].Start], []byte{'\n'})), nil
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		// Carry the tail over, so that a secret across the boundary is
		// seen whole in the next window.
		cut := end - scanOverlap
		lines += bytes.Count(buf[:cut], []byte{'\n'})
		keep = copy(buf, buf[cut:end])
	}
}
