package ssh

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// run is one exec, shell or sftp channel, from its decision to its row:
// what the row says when the channel ends, and how the client is told of
// a refusal. Its fields are set by the channel's goroutine; stdinN and
// protocol errors also by the copies it starts.
type run struct {
	c     *conn
	ch    xssh.Channel
	nl    string // a line's end on the client's side ("\r\n" with a terminal)
	start time.Time
	row   gate.Row

	verdict  event.Verdict
	extra    map[string]string // annotations the chain's answers added
	stdinN   atomic.Int64
	outN     int64
	refusal  string
	failed   bool // refused because the target could not be reached
	exit     exitInfo
	withheld string

	mu   sync.Mutex
	errs []string // protocol errors (sftp), in the row of a channel that ended
}

func (c *conn) newRun(ch xssh.Channel, kind string, fields map[string]string, nl string) *run {
	r := &run{c: c, ch: ch, nl: nl, start: time.Now(), row: c.sess.Row(kind), extra: map[string]string{}}
	r.row.Request = fields
	return r
}

// serve handles the client's requests on the channel while it runs (a
// false answer refuses one) and returns a func that closes the channel
// and waits for them to end. The client closing the channel cancels
// the run.
func (r *run) serve(reqs <-chan *xssh.Request, cancel context.CancelFunc, handle func(*xssh.Request) bool) (closeChannel func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		for req := range reqs {
			ok := handle(req)
			if req.WantReply {
				req.Reply(ok, nil)
			}
		}
	}()
	return func() {
		r.ch.Close()
		<-done
	}
}

// refuse tells the client why the channel ends and gives it status.
func (r *run) refuse(status uint32, why string) {
	r.refusal, r.failed = why, status == ExitUpstream
	r.c.tell(r.ch, "tollgate: "+why+r.nl)
	sendExitStatus(r.ch, status)
}

// protocolError notes err for the row; the channel goes on or ends as
// its caller decides.
func (r *run) protocolError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err.Error())
	r.mu.Unlock()
}

// decide checks that the rules grant verb on the login, then asks the
// chain about ev (a hold waits for its approval, told on the client's
// side). When either refuses, the client is told and decide returns
// false; otherwise the caller calls the decision's Done when the channel
// ends.
func (r *run) decide(ctx context.Context, verb string, ev *event.Event) (*gate.Decision, bool) {
	c := r.c
	if d := c.l.deps.Authorize(c.principal, gate.AccessRequest{Target: c.target.name, Verb: verb, Resource: "/" + c.login}); !d.Allowed {
		r.verdict = event.Verdict{Action: event.Deny, Reason: d.Reason}
		r.refuse(ExitDenied, "access denied: "+d.Reason)
		return nil, false
	}
	dec := c.sess.Decide(ctx, ev, c.holder(r.ch, r.nl, &r.row))
	r.verdict = dec.Verdict
	if !dec.Allowed {
		dec.Done()
		r.refuse(ExitDenied, "denied: "+dec.Reason)
		return nil, false
	}
	return dec, true
}

// record writes the channel's row: its verdict, bytes both ways, time,
// and how it ended.
func (r *run) record() {
	row := &r.row
	row.SetVerdict(r.verdict, annotations(r.extra)...)
	row.RequestBytes, row.ResponseBytes = r.stdinN.Load(), r.outN
	row.DurationMicro = time.Since(r.start).Microseconds()
	switch {
	case r.failed:
		row.Status, row.Error = "failed", r.refusal
	case r.refusal != "":
		row.Status, row.Error = "refused", r.refusal
	case r.withheld != "":
		row.Status, row.Error = "withheld", "output withheld: "+r.withheld
	default:
		row.Status = r.exit.status()
		r.mu.Lock()
		if len(r.errs) > 0 {
			row.Error = strings.Join(r.errs, "; ")
		}
		r.mu.Unlock()
	}
	r.c.sess.Record(*row)
}
