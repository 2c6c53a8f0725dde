package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit/cast"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
)

const replayUsage = `Usage: gateway replay [-c gateway.toml] SESSION_ID [--speed 2] [--idle-limit 2s] [--cast out.cast] [--file audit.jsonl]

Plays a session's terminal recording (an SSH session: what the client
received after redaction, with its timings) in this terminal, or with
--cast writes it as an asciicast v2 file that asciinema and its web player
read ("--cast -" writes to stdout). The recording comes from the audit
store's recordings table (clickhouse or embedded; while the gateway runs
the embedded store is read through its admin API with TOLLGATE_TOKEN, as
for gateway audit sql), or from the session.recording rows of the file
store (the config's [audit] path, or --file). Pauses longer than --idle-limit are cut to it, and
--speed divides every pause. Chunks missing from the recording (the audit
spool was full while the store was away) are named on stderr.

The recording's chunks are rows of the session's hash chain:
gateway audit verify --session SESSION_ID checks them.`

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", replayUsage, stderr)
	path := configFlag(fs)
	speed := fs.Float64("speed", 1, "play this many times faster")
	idle := fs.Duration("idle-limit", 2*time.Second, "cut longer pauses to this (0: keep them)")
	out := fs.String("cast", "", "write an asciicast v2 file here instead of playing (- for stdout)")
	file := fs.String("file", "", "read the recording from this JSON-lines audit file (default: the config's store)")
	// The session may come before or after the flags.
	id, err := parseNamed(fs, args)
	if err != nil {
		return err
	}
	if id == "" {
		fmt.Fprintln(stderr, replayUsage)
		return errUsage
	}
	if !(*speed > 0) {
		return fmt.Errorf("replay: --speed must be above 0")
	}
	c, gaps, err := readRecording(fs, *path, *file, id)
	if err != nil {
		return err
	}
	if len(gaps) > 0 {
		fmt.Fprintf(stderr, "replay: %d chunk(s) of this recording are missing (numbers %v): the audit spool was full while the store was away\n", len(gaps), gaps)
	}
	switch *out {
	case "":
		return play(c, stdout, *speed, *idle)
	case "-":
		return c.Encode(stdout)
	default:
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		w := bufio.NewWriter(f)
		err = c.Encode(w)
		if err == nil {
			err = w.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("replay: %s: %w", *out, err)
		}
		fmt.Fprintf(stderr, "replay: wrote %s (%d events, %dx%d)\n", *out, len(c.Events), c.Header.Width, c.Header.Height)
		return nil
	}
}

// readRecording reads session id's recording from the file, or from the
// config's store.
func readRecording(fs *flag.FlagSet, path, file, id string) (*cast.Cast, []int, error) {
	if file == "" {
		cfg, err := loadConfig(fs, path)
		if err != nil {
			return nil, nil, err
		}
		if cfg.Audit.Store != "file" {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			store, err := openReader(ctx, cfg)
			if err != nil {
				return nil, nil, fmt.Errorf("replay: %w", err)
			}
			defer store.Close()
			tr, err := trail.New(store, auditDatabase(cfg))
			if err != nil {
				return nil, nil, fmt.Errorf("replay: %w", err)
			}
			c, gaps, err := tr.Recording(ctx, id)
			if err != nil {
				return nil, nil, fmt.Errorf("replay: %w", err)
			}
			return c, gaps, nil
		}
		file = cfg.DataPath(cfg.Audit.Path)
	}
	rows, err := trail.ReadFile(file, id)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: %w", err)
	}
	c, gaps, err := trail.RecordingFromRows(rows, id)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: %w", err)
	}
	return c, gaps, nil
}

// play writes the output events to w at their pace: each pause cut to
// idle (when above 0) and divided by speed.
func play(c *cast.Cast, w io.Writer, speed float64, idle time.Duration) error {
	last := 0.0
	for _, e := range c.Events {
		if e.Code != cast.Output {
			continue
		}
		gap := time.Duration((e.Time - last) * float64(time.Second))
		last = e.Time
		if idle > 0 && gap > idle {
			gap = idle
		}
		if gap > 0 {
			time.Sleep(time.Duration(float64(gap) / speed))
		}
		if _, err := io.WriteString(w, e.Data); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}
