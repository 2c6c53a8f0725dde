package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ZooKeeperJar is where Debian's zookeeper package puts the server's
// classes; it runs on the default JRE the package depends on.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

var zkLogLevel = "warn"

// ZooKeeper is a standalone ZooKeeper server in the foreground, its data
// in a temp directory, listening on a loopback port: what ClickHouse's
// replicated tables and ON CLUSTER DDL need. Measured here: ready (its
// port answers ruok) about 0.7 s after the JVM starts.
type ZooKeeper struct {
	Dir  string
	addr string

	mu     sync.Mutex
	out    bytes.Buffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartZooKeeper starts a ZooKeeper that lives until the test ends. A
// missing package fails the test.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		t.Fatalf("testenv: zookeeper is not installed; run `make deps` (it installs the test peers): %v", err)
	}
	java := RequireCommand(t, "java")
	z := &ZooKeeper{Dir: t.TempDir(), addr: FreeAddr(t)}
	host, port, _ := net.SplitHostPort(z.addr)
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=%s\nadmin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=srvr\n",
		z.Dir, port, host)
	if err := os.WriteFile(filepath.Join(z.Dir, "zoo.cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatalf("testenv: zookeeper config: %v", err)
	}
	// slf4j-simple (Debian's libslf4j-java, a dependency) prints the
	// server's warnings to stderr; without a binding it prints nothing.
	cmd := exec.Command(java, "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel="+zkLogLevel,
		"-cp", ZooKeeperJar+":/usr/share/java/slf4j-simple.jar",
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(z.Dir, "zoo.cfg"))
	cmd.Dir = z.Dir
	cmd.Stdout = lockedWriterFor(&z.mu, &z.out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start zookeeper: %v", err)
	}
	z.exited = make(chan struct{})
	go func() { cmd.Wait(); close(z.exited) }()
	z.cmd = cmd
	t.Cleanup(func() { stopProcess(z.cmd, z.exited, syscall.SIGTERM) })

	deadline := time.Now().Add(60 * time.Second)
	for !z.serving() {
		select {
		case <-z.exited:
			t.Fatalf("testenv: zookeeper exited at startup:\n%s", z.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: zookeeper not ready in 60s:\n%s", z.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return z
}

// Addr is the client address (host:port).
func (z *ZooKeeper) Addr() string { return z.addr }

// Output is what the server printed.
func (z *ZooKeeper) Output() string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.out.String()
}

// serving is ZooKeeper's four-letter srvr: its mode once it serves
// requests. (ruok answers imok earlier, while the server still refuses
// sessions; a ClickHouse 18.16 that meets that refusal in ON CLUSTER DDL
// crashes.)
func (z *ZooKeeper) serving() bool {
	c, err := net.DialTimeout("tcp", z.addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	return strings.Contains(string(b), "Mode: standalone")
}

// ClickHouseCluster is ClickHouse servers forming one cluster, one shard
// each (no second replica), with a ZooKeeper for the replicated tables and
// ON CLUSTER DDL: what `[audit.clickhouse] cluster` expects of a real one.
// Every node has the cluster in remote_servers, its own macros ({shard}
// 01, 02, ...; {replica} r1, r2, ...) and its own interserver port.
type ClickHouseCluster struct {
	Name      string
	ZooKeeper *ZooKeeper
	Nodes     []*ClickHouse // Nodes[i] is shard i+1
}

// StartClickHouseCluster starts a ZooKeeper and shards servers (at least
// two) on loopback ports chosen now, and waits until every one answers.
func StartClickHouseCluster(t testing.TB, name string, shards int) *ClickHouseCluster {
	t.Helper()
	if shards < 1 {
		t.Fatalf("testenv: a cluster needs a shard")
	}
	cl := &ClickHouseCluster{Name: name, ZooKeeper: StartZooKeeper(t)}
	for range shards {
		cl.Nodes = append(cl.Nodes, newClickHouse(t))
	}
	var remote strings.Builder
	for _, n := range cl.Nodes {
		host, port, _ := net.SplitHostPort(n.tcp)
		fmt.Fprintf(&remote, "            <shard><internal_replication>true</internal_replication><replica><host>%s</host><port>%s</port></replica></shard>\n", host, port)
	}
	zkHost, zkPort, _ := net.SplitHostPort(cl.ZooKeeper.Addr())
	for i, n := range cl.Nodes {
		host, _, _ := net.SplitHostPort(n.tcp)
		_, inter, _ := net.SplitHostPort(FreeAddr(t))
		n.extra = fmt.Sprintf(`    <interserver_http_host>%s</interserver_http_host>
    <interserver_http_port>%s</interserver_http_port>
    <zookeeper><node><host>%s</host><port>%s</port></node></zookeeper>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path><profile>ddl</profile></distributed_ddl>
    <remote_servers>
        <%s>
%s        </%s>
    </remote_servers>
    <macros><shard>%02d</shard><replica>r%d</replica></macros>
`, host, inter, zkHost, zkPort, name, remote.String(), name, i+1, i+1)
		// ON CLUSTER DDL runs in the DDL worker with its own profile, not
		// the settings of the query that queued it: 18.x needs
		// LowCardinality allowed there.
		n.profiles = "        <ddl>\n            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>\n        </ddl>\n"
		// A connection from another node that sits idle notices a
		// shutdown only at its next poll (poll_interval, 10 s by default),
		// and 18.16 waits for it before exiting.
		n.defaults = "            <poll_interval>1</poll_interval>\n"
		if err := n.writeConfig(); err != nil {
			t.Fatalf("testenv: clickhouse config: %v", err)
		}
	}
	for _, n := range cl.Nodes {
		n.Start(t)
	}
	// Stop every node at once: a node holds connections to the others
	// (Distributed reads), and 18.16 waits for its open connections at
	// shutdown, so stopping one after another waited for the SIGKILL.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range cl.Nodes {
			wg.Go(n.stop)
		}
		wg.Wait()
	})
	return cl
}

// Addrs is every node's native protocol address, in shard order.
func (cl *ClickHouseCluster) Addrs() []string {
	out := make([]string, len(cl.Nodes))
	for i, n := range cl.Nodes {
		out[i] = n.Addr()
	}
	return out
}
