package gitwire

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@x")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v (git is a test peer: make deps)", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// A pack git made: indexed, its commits walked, its blobs named by path.
func TestOpenPackFromGit(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/f.txt"), []byte(strings.Repeat("text\n", 1000)), 0o644)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "one")
	one := git(t, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "a/b/f.txt"), []byte(strings.Repeat("text\n", 1000)+"more\n"), 0o644)
	git(t, dir, "commit", "-q", "-am", "two")
	two := git(t, dir, "rev-parse", "HEAD")
	blob := git(t, dir, "rev-parse", "HEAD:a/b/f.txt")
	cmd := exec.Command("git", "pack-objects", "-q", "--stdout", "--revs")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(two+"\n")
	pack, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p.pack")
	os.WriteFile(path, pack, 0o600)
	p, err := OpenPack(path, DefaultMaxObject)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if found, _ := p.Walk(two, one, 4); !found {
		t.Fatal("walk from two does not reach one")
	}
	if found, boundary := p.Walk(one, two, 4); found || len(boundary) != 0 {
		t.Fatalf("walk from one: %v %v", found, boundary)
	}
	if got := p.BlobPaths([]string{two})[blob]; got != "a/b/f.txt" {
		t.Fatalf("blob path %q", got)
	}
	// Cut short: refused.
	os.WriteFile(path, pack[:len(pack)/2], 0o600)
	if _, err := OpenPack(path, DefaultMaxObject); !errors.Is(err, ErrBadPack) {
		t.Fatalf("truncated: %v", err)
	}
	// Objects over the bound: refused before anything is allocated.
	os.WriteFile(path, pack, 0o600)
	if _, err := OpenPack(path, 1000); !errors.Is(err, ErrBadPack) || !strings.Contains(err.Error(), "over 1000") {
		t.Fatalf("bound: %v", err)
	}
}

// A delta that declares a 1 GiB result from a few bytes is refused.
func TestCheckPackDeltaBomb(t *testing.T) {
	var delta []byte
	delta = binary.AppendUvarint(delta, 10)
	delta = binary.AppendUvarint(delta, 1<<30)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(delta)
	zw.Close()
	pack := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01")
	pack = append(pack, 7<<4|byte(len(delta)))             // ref-delta, small size
	pack = append(pack, bytes.Repeat([]byte{0xab}, 20)...) // base id
	pack = append(pack, z.Bytes()...)
	err := checkPack(bytes.NewReader(pack), DefaultMaxObject)
	if !errors.Is(err, ErrBadPack) || !strings.Contains(err.Error(), "delta to 1073741824 bytes") {
		t.Fatalf("delta bomb: %v", err)
	}
}

func FuzzCheckPack(f *testing.F) {
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01\x30x\x9c\x03\x00\x00\x00\x00\x01"))
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x05"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkPack(bytes.NewReader(in), 1<<20)
	})
}
