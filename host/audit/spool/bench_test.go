package spool

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

var benchOnce sync.Once

// BenchmarkSpool measures once, whatever b.N is, and prints BENCH lines:
// 512-byte records appended in batches of 100 (AppendBatch) and singly
// (Append) under each SyncPolicy, as ns per record and as a ratio to
// SyncNever, and the replay rate.
func BenchmarkSpool(b *testing.B) {
	benchOnce.Do(func() {
		rec := make([]byte, 512)
		for i := range rec {
			rec[i] = byte(i)
		}
		batch := make([][]byte, 100)
		for i := range batch {
			batch[i] = rec
		}
		run := func(pol SyncPolicy, batched bool, n int) (time.Duration, *Spool) {
			s, err := Open(Options{Dir: b.TempDir(), Sync: pol, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if batched {
				for range n / len(batch) {
					if _, err := s.AppendBatch(batch); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				for range n {
					if _, err := s.Append(rec); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Close(); err != nil { // includes the final fsync
				b.Fatal(err)
			}
			return time.Since(start) / time.Duration(n), s
		}
		const nBatch, nSingle, nAlways = 200_000, 100_000, 2_000
		neverB, _ := run(SyncNever, true, nBatch)
		batchB, _ := run(SyncBatch, true, nBatch)
		alwaysB, _ := run(SyncAlways, true, nBatch/10)
		neverS, _ := run(SyncNever, false, nSingle)
		batchS, _ := run(SyncBatch, false, nSingle)
		alwaysS, _ := run(SyncAlways, false, nAlways)
		r := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
		fmt.Printf("BENCH spool_append_syncnever %d ns/record (AppendBatch of 100)\n", neverB.Nanoseconds())
		fmt.Printf("BENCH spool_append_syncbatch %d ns/record ratio=%.2f vs syncnever\n", batchB.Nanoseconds(), r(batchB, neverB))
		fmt.Printf("BENCH spool_append_syncalways %d ns/record ratio=%.2f vs syncnever\n", alwaysB.Nanoseconds(), r(alwaysB, neverB))
		fmt.Printf("BENCH spool_append_single_syncnever %d ns/record (Append)\n", neverS.Nanoseconds())
		fmt.Printf("BENCH spool_append_single_syncbatch %d ns/record ratio=%.2f vs syncnever\n", batchS.Nanoseconds(), r(batchS, neverS))
		fmt.Printf("BENCH spool_append_single_syncalways %d ns/record ratio=%.2f vs syncnever\n", alwaysS.Nanoseconds(), r(alwaysS, neverS))

		// Replay: 200k records of 512 bytes from a closed spool.
		dir := b.TempDir()
		o := Options{Dir: dir, Sync: SyncNever, Logger: slog.New(slog.DiscardHandler)}
		s, err := Open(o)
		if err != nil {
			b.Fatal(err)
		}
		for range nBatch / len(batch) {
			if _, err := s.AppendBatch(batch); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		s, err = Open(o)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		start := time.Now()
		if err := s.Replay(func(Pos, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		s.Close()
		if n != nBatch {
			b.Fatalf("replayed %d", n)
		}
		fmt.Printf("BENCH spool_replay %.0f records/s\n", float64(n)/d.Seconds())
	})
}
