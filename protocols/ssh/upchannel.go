package ssh

import (
	"context"
	"io"
	"strconv"
	"sync"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// upChannel is a session channel on the target, set up like the client's
// and started (exec, shell or subsystem). It closes when the context it
// was opened with ends.
type upChannel struct {
	xssh.Channel
	stop   func() bool
	exited chan struct{}
	exit   exitInfo // how the target's side ended; set once exited is closed
}

// openUpChannel opens a session channel on the target, asks it for the
// client's terminal and variables (su) and sends start with payload. On
// failure it returns, instead, why, in words for the client; refused
// says what the target refused ("refused to start a shell").
func (c *conn) openUpChannel(ctx context.Context, su *chanSetup, start string, payload []byte, refused string) (*upChannel, string) {
	up, err := c.upstream()
	if err != nil {
		return nil, upstreamMessage(err)
	}
	ch, reqs, err := up.OpenChannel("session", nil)
	if err != nil {
		return nil, "target " + c.target.name + ": cannot open a session: " + err.Error()
	}
	u := &upChannel{Channel: ch, exited: make(chan struct{})}
	u.stop = context.AfterFunc(ctx, func() { ch.Close() })
	go func() {
		defer close(u.exited)
		for r := range reqs {
			if r.Type == "exit-status" || r.Type == "exit-signal" {
				u.exit = exitInfo{kind: r.Type, payload: append([]byte(nil), r.Payload...)}
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	fail := func(why string) (*upChannel, string) {
		u.Close()
		<-u.exited
		return nil, why
	}
	if err := su.apply(ch, c.sess.Recording()); err != nil {
		return fail("target " + c.target.name + ": " + err.Error())
	}
	if ok, err := ch.SendRequest(start, true, payload); err != nil || !ok {
		return fail("target " + c.target.name + " " + refused)
	}
	return u, ""
}

// Close closes the channel and unbinds it from its context.
func (u *upChannel) Close() error {
	u.stop()
	return u.Channel.Close()
}

// wait waits for the target's side of the channel to close and returns
// how it ended.
func (u *upChannel) wait() exitInfo {
	<-u.exited
	return u.exit
}

// relayOutput pumps the target's stdout and stderr back to the client
// through the chain (pump) until both end, after blanking the gateway's
// own credential and then wrap (nil: none) on each stream. It merges the
// pumps' annotations into extra and returns the bytes sent and, when
// the chain withheld the output, why.
func (c *conn) relayOutput(ctx context.Context, dec *gate.Decision, up *upChannel, ch xssh.Channel, id uint64, extra map[string]string, wrap func(fd int, r io.Reader) io.Reader) (sent int64, withheld string) {
	var wg sync.WaitGroup
	results := [2]pumpResult{}
	srcs := [2]io.Reader{up, up.Stderr()}
	var scrubbed [2]int // the password's appearances blanked, per stream
	if scrub := c.target.scrub.Load(); scrub.Active() {
		for i := range srcs {
			srcs[i] = scrub.Reader(srcs[i], &scrubbed[i])
		}
	}
	if wrap != nil {
		for i := range srcs {
			srcs[i] = wrap(i, srcs[i])
		}
	}
	for i, p := range []struct {
		fd  string
		src io.Reader
		dst io.Writer
	}{{"stdout", srcs[0], ch}, {"stderr", srcs[1], ch.Stderr()}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.pump(ctx, dec, p.src, p.dst, id, p.fd, &results[i], func() { up.Close() })
		}()
	}
	wg.Wait()
	if n := scrubbed[0] + scrubbed[1]; n > 0 {
		extra["ssh.credential_scrubbed"] = strconv.Itoa(n)
		c.sess.Log().Warn("the target printed the gateway's password; blanked", "target", c.target.name, "count", n)
	}
	for _, r := range results {
		sent += r.bytes
		for k, v := range r.anns {
			mergeAnnotation(extra, k, v)
		}
		if r.withheld != "" && withheld == "" {
			withheld = r.withheld
		}
	}
	return sent, withheld
}
