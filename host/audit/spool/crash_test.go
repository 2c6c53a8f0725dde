package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "TOLLGATE_SPOOL_CRASH_DIR"

// crashPayload is record i of the crash test: its index, then filler whose
// length and bytes derive from the index, so any damage shows.
func crashPayload(i uint64) []byte {
	n := 8 + int(i*7919%1500)
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, i)
	for j := 8; j < n; j++ {
		b[j] = byte(i + uint64(j)*13)
	}
	return b
}

// TestCrashChild is the child of TestCrashKill: it appends numbered
// records with SyncAlways forever, printing each position once Append
// returned, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("only runs as TestCrashKill's child")
	}
	s, err := Open(Options{Dir: dir, Sync: SyncAlways, SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	next, _ := strconv.ParseUint(os.Getenv(crashEnv+"_NEXT"), 10, 64)
	for i := next; ; {
		if i%5 == 0 { // a batch of 3
			ps := [][]byte{crashPayload(i), crashPayload(i + 1), crashPayload(i + 2)}
			p, err := s.AppendBatch(ps)
			if err != nil {
				fmt.Println("ERR", err)
				os.Exit(2)
			}
			fmt.Printf("OK %d %d %d\n", i+2, p.Segment, p.Offset)
			i += 3
			continue
		}
		p, err := s.Append(crashPayload(i))
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		fmt.Printf("OK %d %d %d\n", i, p.Segment, p.Offset)
		i++
	}
}

// TestCrashKill SIGKILLs a child that appends with SyncAlways at a random
// moment, several times over the same spool, and checks after each kill
// that every record the child reported is present, intact and in order.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var next uint64 // records 0..next-1 are known present
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_NEXT="+strconv.FormatUint(next, 10))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reported := map[uint64]Pos{}
		var maxRep uint64
		have := false
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		kill := time.After(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		killed := false
		for line := range lines {
			if !killed {
				select {
				case <-kill:
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				default:
				}
			}
			f := strings.Fields(line)
			if len(f) != 4 || f[0] != "OK" {
				if strings.HasPrefix(line, "ERR") {
					t.Fatalf("child: %s", line)
				}
				continue // test framework chatter
			}
			i, _ := strconv.ParseUint(f[1], 10, 64)
			seg, _ := strconv.ParseUint(f[2], 10, 64)
			off, _ := strconv.ParseInt(f[3], 10, 64)
			reported[i] = Pos{seg, off}
			maxRep, have = max(maxRep, i), true
		}
		if !killed {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		cmd.Wait()
		if !have {
			t.Fatalf("round %d: child reported nothing", round)
		}

		s, lb := openT(t, Options{Dir: dir, SegmentBytes: 64 << 10})
		var want uint64
		err = s.Replay(func(p Pos, b []byte) error {
			if len(b) < 8 {
				return fmt.Errorf("short record at %v", p)
			}
			i := binary.LittleEndian.Uint64(b)
			if i != want {
				return fmt.Errorf("record %d at %v, want %d", i, p, want)
			}
			if !bytes.Equal(b, crashPayload(i)) {
				return fmt.Errorf("record %d at %v damaged", i, p)
			}
			if rp, ok := reported[i]; ok && rp != p {
				return fmt.Errorf("record %d at %v, child reported %v", i, p, rp)
			}
			want++
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if want <= maxRep {
			t.Fatalf("round %d: replayed %d records, child reported up to %d", round, want, maxRep)
		}
		st := s.Stats()
		if st.Corrupt != 0 {
			t.Fatalf("round %d: corrupt records after a kill: %+v\n%s", round, st, lb)
		}
		t.Logf("round %d: child reported %d, replayed %d (%d segments, torn tails %d)", round, maxRep+1, want, st.Segments, st.TornTails)
		s.Close()
		next = want
	}
}
