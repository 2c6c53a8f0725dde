package detect

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// 1 KiB of ordinary log/prose text with no secret.
var plainKiB = func() []byte {
	s := "2024-05-01T10:42:07Z INFO request completed method=GET path=/api/v1/orders/18342 status=200 " +
		"duration=12.4ms user_id=4821 The quick brown fox jumps over the lazy dog; totals: 1234.50 EUR, " +
		"items=3, warehouse=north-2. Customer asked to reschedule delivery to next Tuesday afternoon. "
	for len(s) < 1024 {
		s += s
	}
	return []byte(s[:1024])
}()

var secretKiB = func() []byte {
	b := append([]byte(nil), plainKiB...)
	copy(b[100:], " alice@example.com ")
	copy(b[400:], "key "+tAWSID+" ")
	copy(b[700:], "password=hunter2 ")
	return b
}()

var batch = func() [][]byte {
	var cells [][]byte
	for r := 0; r < 100; r++ {
		cells = append(cells,
			[]byte(fmt.Sprint(100000+r)),
			[]byte([]string{"Alice Martin", "Bob O'Neil", "Chen Wei", "Dana Schmidt"}[r%4]),
			[]byte(fmt.Sprintf("user%d@example.com", r)),
			[]byte(fmt.Sprintf("%d.%02d", r*37%5000, r%100)),
			[]byte(fmt.Sprintf("2024-05-%02dT10:%02d:07Z", 1+r%28, r%60)),
			[]byte([]string{"paid", "pending", "refunded"}[r%3]),
			[]byte(fmt.Sprintf("+49 30 %07d", r*7919)),
			[]byte("Berlin, Germany"))
	}
	return cells
}()

func BenchmarkSetPlain1KiB(b *testing.B) {
	set := allSet(b)
	var dst []Span
	b.SetBytes(int64(len(plainKiB)))
	for b.Loop() {
		dst = set.Find(plainKiB, dst[:0])
	}
	if len(dst) != 0 {
		b.Fatalf("plain text has spans: %v", dst)
	}
}

func BenchmarkSet3Secrets1KiB(b *testing.B) {
	set := allSet(b)
	var dst []Span
	b.SetBytes(int64(len(secretKiB)))
	for b.Loop() {
		dst = set.Find(secretKiB, dst[:0])
	}
	if len(dst) != 3 {
		b.Fatalf("want 3 spans, got %v", dst)
	}
}

func BenchmarkSetBatch100x8(b *testing.B) {
	set := allSet(b)
	var dst []Span
	n := 0
	for _, c := range batch {
		n += len(c)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		for _, c := range batch {
			dst = set.Find(c, dst[:0])
		}
	}
}

func BenchmarkMaskRedact3Secrets1KiB(b *testing.B) {
	set := allSet(b)
	spans := set.Find(secretKiB, nil)
	var out []byte
	for b.Loop() {
		out = Mask(out[:0], secretKiB, spans, Redact, nil)
	}
}

func BenchmarkStreamPlain1KiBChunks(b *testing.B) {
	s := NewStream(allSet(b), Redact, nil)
	b.SetBytes(int64(len(plainKiB)))
	for b.Loop() {
		s.Write(plainKiB)
	}
}

// Go regexp equivalents of the builtins, no prefilter: what the prefilters save.
var regexpEquivalents = []string{
	`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*-----`,
	`\beyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`,
	`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`,
	`(?:aws|AWS|Aws|secret|Secret|SECRET).{0,64}?\b[A-Za-z0-9/+]{40}\b`,
	`\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_\w{22,244})\b`,
	`\bgl(?:pat|ptt|dt|rt)-[\w-]{20,250}\b`,
	`\bxox[abposr]-[A-Za-z0-9-]{10,250}\b`,
	`\b(?:\d[ -]?){12,18}\d\b`,
	`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`,
	`[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`,
	`(?i)(?:password|passwd|pwd|passphrase)["']?[ \t]{0,4}(?::=?|=>?)[ \t]{0,4}(?:"[^"\n]{1,256}"|'[^'\n]{1,256}'|[^\s"'` + "`" + `,;&)}\]<>]{1,256})`,
	`[A-Za-z0-9+/_-]{20,256}`,
}

func BenchmarkRegexpOnlyPlain1KiB(b *testing.B) {
	var res []*regexp.Regexp
	for _, e := range regexpEquivalents {
		res = append(res, regexp.MustCompile(e))
	}
	b.SetBytes(int64(len(plainKiB)))
	for b.Loop() {
		for _, re := range res {
			re.FindAllIndex(plainKiB, -1)
		}
	}
}

func BenchmarkRegexpOnlyPlain1KiBCombined(b *testing.B) {
	re := regexp.MustCompile(strings.Join(regexpEquivalents, "|"))
	b.SetBytes(int64(len(plainKiB)))
	for b.Loop() {
		re.FindAllIndex(plainKiB, -1)
	}
}

// oldMaskDefault and oldRedactDefault are the plugins' default detector
// lists before gitleaks' rules: the "before" of BenchmarkDefaultSets.
var (
	oldMaskDefault = []string{"email", "credit_card", "iban", "aws_access_key", "aws_secret_key",
		"github_token", "gitlab_token", "slack_token", "jwt", "pem_private_key", "password_assignment", "high_entropy"}
	oldRedactDefault = []string{"aws_access_key", "aws_secret_key", "github_token", "gitlab_token",
		"slack_token", "jwt", "pem_private_key", "password_assignment"}
	newMaskDefault   = []string{"email", "credit_card", "iban", "secrets", "high_entropy"}
	newRedactDefault = []string{"secrets"}
)

// BenchmarkDefaultSets prints, for the mask and redact plugins' default
// sets before and after gitleaks' rules, in one run: whole-text and
// streamed (4 KiB chunks) throughput over 1 MiB of log text with a few
// secrets, the CPU each takes per MiB (process CPU time, steadier than
// wall time on shared cores; the ratios are of CPU), and the 100×8 row
// batch:
//
//	BENCH detect_<set>_default_text <MB/s> MB/s ratio=<after/before> vs before
func BenchmarkDefaultSets(b *testing.B) {
	text := bytes.Repeat(secretKiB, 1024)
	mib := float64(len(text)) / (1 << 20)
	type figures struct{ wholeMBs, streamMBs, wholeCPU, streamCPU, batchCPU float64 }
	measure := func(names []string) (f figures) {
		ds, err := Resolve(names)
		if err != nil {
			b.Fatal(err)
		}
		set := NewSet(ds...)
		set.Find(text[:4096], nil) // compile once, outside the figures
		const rounds = 3
		start, cpu := time.Now(), cpuTime()
		for range rounds {
			set.Find(text, nil)
		}
		f.wholeMBs = float64(rounds*len(text)) / 1e6 / time.Since(start).Seconds()
		f.wholeCPU = (cpuTime() - cpu) / rounds / mib
		start, cpu = time.Now(), cpuTime()
		for range rounds {
			s := NewStream(set, Redact, nil)
			for rest := text; len(rest) > 0; {
				n := min(len(rest), 4096)
				s.Write(rest[:n])
				rest = rest[n:]
			}
			s.Flush()
		}
		f.streamMBs = float64(rounds*len(text)) / 1e6 / time.Since(start).Seconds()
		f.streamCPU = (cpuTime() - cpu) / rounds / mib
		const batches = 200
		var dst []Span
		cpu = cpuTime()
		for range batches {
			for _, c := range batch {
				dst = set.Find(c, dst[:0])
			}
		}
		f.batchCPU = (cpuTime() - cpu) / batches
		return f
	}
	for b.Loop() {
		for _, tc := range []struct {
			name        string
			before, now []string
		}{{"mask", oldMaskDefault, newMaskDefault}, {"redact", oldRedactDefault, newRedactDefault}} {
			x, y := measure(tc.before), measure(tc.now)
			fmt.Printf("BENCH detect_%s_default_text %.1f MB/s ratio=%.2f vs before (%.1f MB/s; ratio of CPU per MiB)\n", tc.name, y.wholeMBs, x.wholeCPU/y.wholeCPU, x.wholeMBs)
			fmt.Printf("BENCH detect_%s_default_text_cpu_per_mib %.2f ms ratio=%.2f vs before (%.2f ms)\n", tc.name, y.wholeCPU*1e3, y.wholeCPU/x.wholeCPU, x.wholeCPU*1e3)
			fmt.Printf("BENCH detect_%s_default_stream_4k %.1f MB/s ratio=%.2f vs before (%.1f MB/s; ratio of CPU per MiB)\n", tc.name, y.streamMBs, x.streamCPU/y.streamCPU, x.streamMBs)
			fmt.Printf("BENCH detect_%s_default_stream_cpu_per_mib %.2f ms ratio=%.2f vs before (%.2f ms)\n", tc.name, y.streamCPU*1e3, y.streamCPU/x.streamCPU, x.streamCPU*1e3)
			fmt.Printf("BENCH detect_%s_default_batch_100x8_cpu %.1f us ratio=%.2f vs before (%.1f us)\n", tc.name, y.batchCPU*1e6, y.batchCPU/x.batchCPU, x.batchCPU*1e6)
		}
	}
}

// cpuTime is the process's user and system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
