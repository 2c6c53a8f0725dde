package soak

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Read samples a gateway process: its resident set from /proc, and the
// heap, goroutines and spool from its admin listener's /metrics. A figure
// it cannot read stays 0 (the process may be between a kill and a restart).
func Read(gateway string, pid int, admin string, since time.Time) Sample {
	s := Sample{At: time.Since(since), Gateway: gateway}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				s.RSS = kb << 10
			}
		}
	}
	m, _ := Metrics(admin)
	s.Heap = int64(m["tollgate_go_heap_objects_bytes"])
	s.Goroutines = int64(m["tollgate_go_goroutines"])
	s.SpoolBytes = int64(m["tollgate_audit_spool_bytes"])
	return s
}

// Metrics reads the admin listener's /metrics into name → value.
func Metrics(admin string) (map[string]float64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}
