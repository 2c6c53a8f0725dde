package detect

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
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
