package http

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/protocols/http/gitwire"
)

// Git smart HTTP on a target with git = true. The gateway reads what
// git says (the wants of a fetch, the commands of a push), turns it into
// git.fetch and git.push events the chain decides on before anything is
// forwarded, and answers a refusal in git's own terms: an ERR packet for
// a fetch, a report-status for a push, which git prints as
// "! [remote rejected] <ref> (<reason>)".

// Row and event kinds of git targets.
const (
	kindGitRefs  = "git.refs"
	kindGitFetch = "git.fetch"
	kindGitPush  = "git.push"
)

// Access verbs of git targets (the [[access]] rule's methods).
const (
	verbFetch = "FETCH"
	verbPush  = "PUSH"
)

// Bounds on what the gateway reads into memory of a git request: an
// upload-pack request (wants and haves) and a push's command list.
const (
	maxGitRequest     = 16 << 20
	maxGitCommandList = 16 << 20
	// maxAncestryPack bounds the pack the upstream sends when asked
	// whether a push is a fast-forward.
	maxAncestryPack = 256 << 20
)

// gitOp is what a request to a git target asks.
type gitOp struct {
	op   string // "info/refs", "upload-pack", "receive-pack"
	repo string // the repository path, e.g. /acme/app.git
	verb string
}

// classifyGit recognizes the smart HTTP requests; any other (the dumb
// protocol's object downloads) is not served, so that every fetch goes
// through the one path that records what was fetched.
func classifyGit(method, path, service string) (gitOp, bool) {
	switch {
	case method == http.MethodGet && strings.HasSuffix(path, "/info/refs"):
		g := gitOp{op: "info/refs", repo: strings.TrimSuffix(path, "/info/refs")}
		switch service {
		case "git-upload-pack":
			g.verb = verbFetch
		case "git-receive-pack":
			g.verb = verbPush
		default:
			return gitOp{}, false
		}
		return g, g.repo != ""
	case method == http.MethodPost && strings.HasSuffix(path, "/git-upload-pack"):
		g := gitOp{op: "upload-pack", repo: strings.TrimSuffix(path, "/git-upload-pack"), verb: verbFetch}
		return g, g.repo != ""
	case method == http.MethodPost && strings.HasSuffix(path, "/git-receive-pack"):
		g := gitOp{op: "receive-pack", repo: strings.TrimSuffix(path, "/git-receive-pack"), verb: verbPush}
		return g, g.repo != ""
	}
	return gitOp{}, false
}

// gitVersion is the protocol version the client asks for in Git-Protocol.
func gitVersion(h http.Header) int {
	for _, f := range strings.Split(h.Get("Git-Protocol"), ":") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "version="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 0
}

// serveGit handles an authenticated request to a git target.
func (x *exchange) serveGit(w *statusRecorder, r *http.Request, p *event.Principal) {
	services := r.URL.Query()["service"]
	service := ""
	if len(services) == 1 {
		service = services[0] // two would let the gateway and the server read different ones
	}
	g, ok := classifyGit(r.Method, x.fwdPath, service)
	if !ok {
		x.fail(w, http.StatusNotFound, "not_git", "target "+x.rt.cfg.Target+" serves Git smart HTTP only (info/refs?service=git-upload-pack|git-receive-pack, git-upload-pack, git-receive-pack)")
		return
	}
	x.kind = map[string]string{"info/refs": kindGitRefs, "upload-pack": kindGitFetch, "receive-pack": kindGitPush}[g.op]
	d := x.l.deps.Authorize(p, gate.AccessRequest{Target: x.rt.cfg.Target, Verb: g.verb, Resource: g.repo})
	if !d.Allowed {
		x.fail(w, http.StatusForbidden, "access_denied", d.Reason)
		return
	}
	x.rule = d.Rule
	x.ev = &event.Event{
		Phase: event.Request, Protocol: "http", SessionID: x.sess.ID(), Target: x.rt.cfg.Target, Principal: p,
		// path repeats the repository, so that rules written for paths
		// (guard's and approve's paths, the console's view) apply.
		Fields: map[string]string{"repository": g.repo, "path": g.repo, "protocol": strconv.Itoa(gitVersion(r.Header))},
	}
	if x.reqBody = (&countingReader{r: r.Body, onErr: func() {}}); r.Body == nil {
		x.reqBody.r = http.NoBody
	}
	if d := x.l.cfg.ReadBodyTimeout.Duration; d > 0 && r.Method == http.MethodPost {
		// As for any request body: one that trickles in holds a
		// goroutine; the deadline is lifted once the body is read (a
		// push is read whole before anyone is asked about it).
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
			x.reqBody.onEOF = func() { rc.SetReadDeadline(time.Time{}) }
		}
	}
	switch g.op {
	case "info/refs":
		x.gitRefs(w, r, g)
	case "upload-pack":
		x.gitFetch(w, r, g)
	case "receive-pack":
		x.gitPush(w, r, g)
	}
}

// gitBody is the request body, decoded when git sent it gzipped.
func (x *exchange) gitBody(r *http.Request) (io.Reader, error) {
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
		return x.reqBody, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(x.reqBody)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", gitwire.ErrMalformed, err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q is not served", gitwire.ErrMalformed, ce)
	}
}

// gitRefs forwards a ref advertisement. On a target whose pushes are
// read (always: the force check and the scan need whole packs), the
// receive-pack advertisement gains the capability no-thin, so that git
// sends packs without deltas against objects the pack lacks.
func (x *exchange) gitRefs(w *statusRecorder, r *http.Request, g gitOp) {
	x.kind = kindGitRefs
	x.ev.Kind = kindGitRefs
	x.ev.Fields["service"] = r.URL.Query().Get("service")
	if !x.allowed(w, x.gitDecide(r, x.ev)) {
		return
	}
	var transform func(io.Reader) io.Reader
	if g.verb == verbPush {
		transform = addNoThin
	}
	x.gitForward(w, r, http.NoBody, 0, "", transform, false)
}

// gitFetch reads an upload-pack request whole (wants and haves: small),
// asks the chain, and forwards it.
func (x *exchange) gitFetch(w *statusRecorder, r *http.Request, g gitOp) {
	x.kind = kindGitFetch
	x.ev.Kind = kindGitFetch
	body, err := x.gitBody(r)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(body, maxGitRequest+1))
		if err == nil && len(b) > maxGitRequest {
			err = fmt.Errorf("%w: upload-pack request over %d bytes", gitwire.ErrMalformed, maxGitRequest)
		}
		var req *gitwire.UploadRequest
		if err == nil && string(b) == "0000" {
			// git's probe before a large request (http.postBuffer): no
			// command, nothing to decide; the upstream answers it.
			x.ev.Fields["command"] = "probe"
			x.gitForward(w, r, bytes.NewReader(b), int64(len(b)), "application/x-git-upload-pack-request", nil, false)
			return
		}
		if err == nil {
			req, err = gitwire.ParseUploadRequest(bytes.NewReader(b), gitVersion(r.Header))
		}
		if err == nil {
			f := x.ev.Fields
			f["command"] = req.Command
			f["wants"] = strings.Join(req.Wants, "\n")
			f["want_refs"] = strings.Join(req.WantRefs, "\n")
			f["haves"] = strconv.Itoa(req.Haves)
			if len(req.Args) > 0 {
				f["args"] = strings.Join(req.Args, "\n")
			}
			dec := x.gitDecide(r, x.ev)
			if dec.Refusal == gate.RefusedByPolicy || dec.Refusal == gate.RefusedByHold || dec.Refusal == gate.RefusedChainFailed {
				x.verdict = dec.Verdict
				x.gitFetchRefused(w, dec.Reason)
				return
			}
			if !x.allowed(w, dec) {
				return
			}
			x.gitForward(w, r, bytes.NewReader(b), int64(len(b)), "application/x-git-upload-pack-request", nil, false)
			return
		}
	}
	x.gitBadRequest(w, err)
}

// gitBadRequest answers a request the gateway could not read.
func (x *exchange) gitBadRequest(w http.ResponseWriter, err error) {
	if errors.Is(err, gitwire.ErrMalformed) || errors.Is(err, io.ErrUnexpectedEOF) {
		x.fail(w, http.StatusBadRequest, "bad_git_request", err.Error())
		return
	}
	x.errMsg, x.status = "client: request body: "+err.Error(), 499
}

// gitFetchRefused answers a refused fetch with an ERR packet: git prints
// "remote error: <reason>".
func (x *exchange) gitFetchRefused(w http.ResponseWriter, reason string) {
	x.errMsg = "denied: " + reason
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(gitwire.AppendError(nil, reason))
}

// gitDecide runs ev through the chain (with approvals); the Decision
// comes back Done (git requests have no response events).
func (x *exchange) gitDecide(r *http.Request, ev *event.Event) *gate.Decision {
	dec := x.sess.Decide(r.Context(), ev, func(ctx context.Context, ev *event.Event, v event.Verdict) (event.Verdict, bool) {
		v, ap, ok := x.sess.AskApproval(ctx, ev, v, gate.Ask{Notify: x.notifyHeld})
		if ap.ID != "" {
			x.approvalID, x.approver = ap.ID, ap.Approver
		}
		return v, ok
	})
	dec.Done()
	return dec
}

// notifyHeld tells a waiting git where its approval is: on a push with
// side-band, as a progress message ("remote: ..."), and in the log.
func (x *exchange) notifyHeld(id, url string) {
	x.sess.Log().Info("git request held for approval", "approval_id", id)
	if x.progress != nil {
		x.progress("held for approval " + id + ": " + url + "\n")
	}
}

// gitForward sends the request to the target with body (length bytes,
// or -1 for unknown) and streams the answer back, through transform when
// set. headerSent: the client already has the status and headers.
func (x *exchange) gitForward(w *statusRecorder, r *http.Request, body io.Reader, length int64, contentType string, transform func(io.Reader) io.Reader, headerSent bool) {
	if x.rt.up.synced {
		if !x.forwardDurable(w, r) {
			return
		}
		w.holdEnd()
	}
	u := *x.rt.up.url
	u.Path = singleJoin(x.rt.up.url.Path, x.fwdPath)
	u.RawPath = ""
	u.RawQuery = ""
	if r.Method == http.MethodGet {
		// Only what the gateway read goes on: service=<the one it checked>.
		u.RawQuery = "service=" + r.URL.Query().Get("service")
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		x.fail(w, http.StatusBadGateway, "upstream_unavailable", "the target's URL could not be built")
		return
	}
	out.ContentLength = length
	if length == 0 {
		out.Body = http.NoBody
	}
	for _, h := range []string{"Accept", "Git-Protocol", "User-Agent", "Accept-Language"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if contentType != "" {
		out.Header.Set("Content-Type", contentType)
	}
	out.Header.Set("X-Tollgate-Session-Id", x.sess.ID())
	x.rt.up.inject(out.Header)
	resp, err := x.rt.up.transport.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			x.errMsg, x.status = "client went away", 499
			return
		}
		x.sess.Log().Warn("upstream request failed", "target", x.rt.cfg.Target, "err", err)
		x.errMsg = "upstream: " + err.Error()
		if headerSent {
			w.Write(gitwire.AppendFlush(gitwire.Sideband(nil, 3, []byte("the target did not answer\n"))))
			return
		}
		x.fail(w, http.StatusBadGateway, "upstream_unavailable", "the target did not answer")
		x.errMsg = "upstream: " + err.Error()
		return
	}
	defer resp.Body.Close()
	var src io.Reader = resp.Body
	if headerSent {
		if resp.StatusCode != http.StatusOK {
			x.errMsg = "upstream: status " + resp.Status
			w.Write(gitwire.AppendFlush(gitwire.Sideband(nil, 3, []byte("the target answered "+resp.Status+"\n"))))
			return
		}
	} else {
		h := w.Header()
		for _, k := range []string{"Content-Type", "Cache-Control", "Expires", "Pragma"} {
			if v := resp.Header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		if transform != nil && resp.StatusCode == http.StatusOK {
			src = transform(src)
		} else if resp.ContentLength >= 0 {
			h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		w.WriteHeader(resp.StatusCode)
	}
	if x.rt.up.scrub.Active() {
		// Pack data is zlib-compressed, so the credential's bytes show
		// only where the server writes text (errors, progress); blanking
		// them keeps every length, and so the framing.
		sr := x.rt.up.scrub.Reader(src, &x.scrubbed.body)
		defer sr.Close()
		src = sr
	}
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				x.errMsg, x.status = "client went away", 499
				return
			}
			if len(buf) > n || rerr != nil {
				w.Flush() // a pause in the stream (the server is packing): let git see progress
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			x.errMsg = "upstream: response body: " + rerr.Error()
			return
		}
	}
	if resp.StatusCode != http.StatusOK {
		x.errMsg = "upstream: status " + resp.Status
	}
}

// addNoThin adds " no-thin" to the capabilities of a receive-pack
// advertisement (after the NUL of its first ref line) and passes the
// rest through.
func addNoThin(src io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		in := gitwire.NewPktReader(src)
		var out []byte
		// The service line, its flush, then the first ref line, which
		// carries the capabilities; the rest passes as it is.
		err := func() error {
			for i := 0; i < 3; i++ {
				t, b, err := in.Next()
				if err != nil {
					return err
				}
				switch {
				case t == gitwire.PktFlush:
					out = gitwire.AppendFlush(out)
					continue
				case t != gitwire.PktData:
					return fmt.Errorf("%w: special packet in an advertisement", gitwire.ErrMalformed)
				}
				if nul := bytes.IndexByte(b, 0); nul >= 0 && i == 2 {
					caps := strings.TrimSuffix(string(b[nul+1:]), "\n")
					if !strings.Contains(" "+caps+" ", " no-thin ") {
						b = append(append(append([]byte(nil), b[:nul+1]...), caps+" no-thin"...), '\n')
					}
				}
				if out, err = gitwire.AppendPkt(out, b); err != nil {
					return err
				}
			}
			return nil
		}()
		if err == nil {
			_, err = pw.Write(out)
			if err == nil {
				_, err = io.Copy(pw, in.Buffered())
			}
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// spool copies r to a temporary file, at most max bytes; over is true
// when r held more (the file then holds the first max bytes). The
// caller closes and removes the file.
func spool(r io.Reader, max int64) (f *os.File, n int64, over bool, err error) {
	f, err = os.CreateTemp("", "tollgate-git-pack-")
	if err != nil {
		return nil, 0, false, fmt.Errorf("git: spool: %w", err)
	}
	n, err = io.Copy(f, io.LimitReader(r, max+1))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, n, false, err
	}
	if n > max {
		return f, max, true, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, n, false, fmt.Errorf("git: spool: %w", err)
	}
	return f, n, false, nil
}

// gitStart answers the start of a push early, once: status, headers and
// (with side-band) nothing more, so that progress can reach git while a
// person decides.
func (x *exchange) gitStart(w *statusRecorder) {
	if x.headerSent {
		return
	}
	x.headerSent = true
	h := w.Header()
	h.Set("Content-Type", "application/x-git-receive-pack-result")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Flush()
}
