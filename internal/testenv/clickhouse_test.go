package testenv

import (
	"net"
	"testing"
)

// The harness starts a real server, survives a SIGKILL and restarts it on
// the same ports.
func TestClickHouseStartKillRestart(t *testing.T) {
	c := StartClickHouse(t)
	if !pingOK("http://" + c.HTTPAddr() + "/ping") {
		t.Fatal("no ping after start")
	}
	c.Kill()
	if conn, err := net.Dial("tcp", c.Addr()); err == nil {
		conn.Close()
		t.Fatal("native port still open after Kill")
	}
	c.Restart(t)
	if !pingOK("http://" + c.HTTPAddr() + "/ping") {
		t.Fatalf("no ping after restart:\n%s", c.Output())
	}
}
