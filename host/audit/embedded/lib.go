package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvLibPath names the environment variable that points at libchdb.so.
const EnvLibPath = "CHDB_LIB_PATH"

// DefaultLibPath is the last place Open looks for the library.
const DefaultLibPath = "/usr/local/lib/libchdb.so"

// ErrNoLibrary is wrapped by Open's error when libchdb.so is not found.
var ErrNoLibrary = errors.New("embedded: libchdb.so not found (run `make deps`, which runs .ci/install-chdb, or set " + EnvLibPath + ")")

// lib is the bound part of chDB's C API (chdb.h, the chdb_connection one):
//
//	chdb_connection *chdb_connect(int argc, char **argv);
//	void chdb_close_conn(chdb_connection *conn);
//	chdb_result *chdb_query(chdb_connection conn, const char *query, const char *format);
//	void chdb_destroy_query_result(chdb_result *result);
//	char *chdb_result_buffer(chdb_result *result);
//	size_t chdb_result_length(chdb_result *result);
//	const char *chdb_result_error(chdb_result *result);
//
// chdb_connection is a pointer to a struct holding one pointer; chdb_query
// takes that pointer by value, connect and close take its address.
type lib struct {
	path          string
	connect       func(argc int32, argv **byte) unsafe.Pointer
	closeConn     func(conn unsafe.Pointer)
	query         func(conn unsafe.Pointer, query, format string) unsafe.Pointer
	destroyResult func(res unsafe.Pointer)
	resultBuffer  func(res unsafe.Pointer) unsafe.Pointer
	resultLength  func(res unsafe.Pointer) uintptr
	resultError   func(res unsafe.Pointer) unsafe.Pointer
}

var (
	libMu     sync.Mutex
	loaded    *lib
	connected bool // a Store holds the process's one chDB connection
)

// findLibrary resolves the library path: explicit, then CHDB_LIB_PATH, then
// <module root>/.deps/chdb/libchdb.so (found by walking up from the working
// directory and from the executable's directory to a go.mod), then
// /usr/local/lib/libchdb.so.
func findLibrary(explicit string) (string, error) {
	var tried []string
	try := func(p string) bool {
		if p == "" {
			return false
		}
		tried = append(tried, p)
		st, err := os.Stat(p)
		return err == nil && !st.IsDir()
	}
	if explicit != "" {
		if try(explicit) {
			return explicit, nil
		}
		return "", fmt.Errorf("%w: Options.LibPath %s does not exist", ErrNoLibrary, explicit)
	}
	if env := os.Getenv(EnvLibPath); env != "" {
		if try(env) {
			return env, nil
		}
		return "", fmt.Errorf("%w: %s=%s does not exist", ErrNoLibrary, EnvLibPath, env)
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if p := filepath.Join(dir, ".deps", "chdb", "libchdb.so"); try(p) {
					return p, nil
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if try(DefaultLibPath) {
		return DefaultLibPath, nil
	}
	return "", fmt.Errorf("%w; looked at %v", ErrNoLibrary, tried)
}

// loadLibrary dlopens the library once per process. A later Open that
// names another path gets an error: a loaded library cannot be swapped.
func loadLibrary(explicit string) (*lib, error) {
	libMu.Lock()
	defer libMu.Unlock()
	if loaded != nil {
		if explicit != "" && explicit != loaded.path {
			return nil, fmt.Errorf("embedded: libchdb already loaded from %s, cannot load %s too", loaded.path, explicit)
		}
		return loaded, nil
	}
	path, err := findLibrary(explicit)
	if err != nil {
		return nil, err
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("embedded: load %s: %v", path, err)
	}
	l := &lib{path: path}
	for name, fn := range map[string]any{
		"chdb_connect":              &l.connect,
		"chdb_close_conn":           &l.closeConn,
		"chdb_query":                &l.query,
		"chdb_destroy_query_result": &l.destroyResult,
		"chdb_result_buffer":        &l.resultBuffer,
		"chdb_result_length":        &l.resultLength,
		"chdb_result_error":         &l.resultError,
	} {
		sym, err := purego.Dlsym(h, name)
		if err != nil {
			return nil, fmt.Errorf("embedded: %s lacks %s (too old a chDB?): %v", path, name, err)
		}
		purego.RegisterFunc(fn, sym)
	}
	loaded = l
	return l, nil
}

// cstring is s NUL-terminated; the caller keeps the slice alive.
func cstring(s string) []byte { return append([]byte(s), 0) }

// gostring copies a NUL-terminated C string.
func gostring(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// conn is the process's chDB connection (a chdb_connection *).
type conn struct {
	lib *lib
	ptr unsafe.Pointer // chdb_connection * (points at the handle)
}

// dial opens the process's one connection on dir. chDB keeps a single
// connection per process: a second one while the first is open would
// silently share (or replace) it, so it is refused here.
func dial(l *lib, dir string) (*conn, error) {
	libMu.Lock()
	defer libMu.Unlock()
	if connected {
		return nil, errors.New("embedded: a store is already open in this process (chDB allows one connection per process); close it first")
	}
	args := [][]byte{cstring("clickhouse"), cstring("--path=" + dir)}
	argv := make([]*byte, len(args)+1) // NULL-terminated like main's argv
	for i := range args {
		argv[i] = &args[i][0]
	}
	p := l.connect(int32(len(args)), &argv[0])
	keepAlive(args, argv)
	if p == nil || *(*unsafe.Pointer)(p) == nil {
		return nil, fmt.Errorf("embedded: chdb_connect(%s) failed (is another process using this directory?)", dir)
	}
	connected = true
	return &conn{lib: l, ptr: p}, nil
}

//go:noinline
func keepAlive(...any) {}

func (c *conn) close() {
	libMu.Lock()
	defer libMu.Unlock()
	if c.ptr != nil {
		c.lib.closeConn(c.ptr)
		c.ptr = nil
		connected = false
	}
}

// exec runs one statement and returns its output in format.
func (c *conn) exec(query, format string) ([]byte, error) {
	if c.ptr == nil {
		return nil, errors.New("embedded: store is closed")
	}
	res := c.lib.query(*(*unsafe.Pointer)(c.ptr), query, format)
	if res == nil {
		return nil, nil
	}
	defer c.lib.destroyResult(res)
	if msg := gostring(c.lib.resultError(res)); msg != "" {
		return nil, errors.New(msg)
	}
	n := c.lib.resultLength(res)
	buf := c.lib.resultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...), nil
}
