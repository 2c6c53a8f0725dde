package gitwire

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// ErrBadPack marks a pack the gateway cannot read: truncated, corrupt,
// or thin (a delta against an object outside the pack).
var ErrBadPack = errors.New("unreadable pack")

// Pack is a pack file on disk, indexed, with its commits and trees read:
// enough to walk a pushed history and to name each new blob's path.
// Blob contents are read from the file one at a time, never all at once.
type Pack struct {
	pf      *packfile.Packfile
	commits map[string]commitInfo
	trees   map[string][]treeEntry
	blobs   []string // in pack order
	Objects int
}

type commitInfo struct {
	tree    string
	parents []string
}

type treeEntry struct {
	name string
	id   string
	tree bool // a subdirectory; else a blob (file or symlink)
}

// largeObject is the size above which a blob is read from the file as a
// stream instead of into memory.
const largeObject = 1 << 20

// OpenPack indexes the pack at path (Git's own idx, built in memory from
// a pass over the file, as index-pack does) and reads its commits and
// trees. A pack that is cut short, corrupt, or thin, or that holds an
// object over maxObject bytes (checkPack), is ErrBadPack.
func OpenPack(path string, maxObject int64) (*Pack, error) {
	dir, name := filepath.Split(path)
	fs := osfs.New(dir)
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := checkPack(f, maxObject); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("pack: %w", err)
	}
	w := new(idxfile.Writer)
	parser, err := packfile.NewParser(packfile.NewScanner(f), w)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrBadPack, err)
	}
	if _, err := parser.Parse(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrBadPack, err)
	}
	idx, err := w.Index()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: index: %w", ErrBadPack, err)
	}
	p := &Pack{pf: packfile.NewPackfile(idx, fs, f, largeObject), commits: map[string]commitInfo{}, trees: map[string][]treeEntry{}}
	iter, err := p.pf.GetAll()
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %w", ErrBadPack, err)
	}
	defer iter.Close()
	err = iter.ForEach(func(o plumbing.EncodedObject) error {
		p.Objects++
		id := o.Hash().String()
		switch o.Type() {
		case plumbing.BlobObject:
			p.blobs = append(p.blobs, id)
		case plumbing.CommitObject:
			b, err := readObject(o)
			if err != nil {
				return err
			}
			p.commits[id] = parseCommit(b)
		case plumbing.TreeObject:
			b, err := readObject(o)
			if err != nil {
				return err
			}
			es, err := parseTree(b)
			if err != nil {
				return fmt.Errorf("tree %s: %w", id, err)
			}
			p.trees[id] = es
		}
		return nil
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %w", ErrBadPack, err)
	}
	return p, nil
}

// Close releases the pack file.
func (p *Pack) Close() error { return p.pf.Close() }

func readObject(o plumbing.EncodedObject) ([]byte, error) {
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// parseCommit reads a commit's tree and parents from its header.
func parseCommit(b []byte) commitInfo {
	var c commitInfo
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
		if len(line) == 0 {
			break // end of the header
		}
		if v, ok := bytes.CutPrefix(line, []byte("tree ")); ok {
			c.tree = string(v)
		} else if v, ok := bytes.CutPrefix(line, []byte("parent ")); ok {
			c.parents = append(c.parents, string(v))
		}
	}
	return c
}

// parseTree reads a tree object's entries: "<mode> <name>\0<20-byte id>".
func parseTree(b []byte) ([]treeEntry, error) {
	var es []treeEntry
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		nul := bytes.IndexByte(b, 0)
		if sp < 0 || nul < sp || len(b) < nul+1+20 {
			return nil, errors.New("malformed tree entry")
		}
		mode := string(b[:sp])
		name := string(b[sp+1 : nul])
		id := fmt.Sprintf("%x", b[nul+1:nul+21])
		b = b[nul+21:]
		switch mode {
		case "40000", "040000":
			es = append(es, treeEntry{name: name, id: id, tree: true})
		case "160000": // a submodule's commit: not in this repository
		default:
			es = append(es, treeEntry{name: name, id: id})
		}
	}
	return es, nil
}

// HasCommit reports whether the pack holds commit id.
func (p *Pack) HasCommit(id string) bool { _, ok := p.commits[id]; return ok }

// Walk follows the parents of from through the commits of the pack. It
// reports whether target was reached, and the commits outside the pack
// where the walk stopped (already on the server), at most limit of them.
func (p *Pack) Walk(from, target string, limit int) (found bool, boundary []string) {
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if id == target {
			return true, nil
		}
		c, ok := p.commits[id]
		if !ok {
			if len(boundary) < limit {
				boundary = append(boundary, id)
			}
			continue
		}
		stack = append(stack, c.parents...)
	}
	return false, boundary
}

// BlobPaths names each blob of the pack with the first path it has in
// the trees of the pack's commits reachable from tips (through commits
// in the pack). Blobs no new tree names are left out.
func (p *Pack) BlobPaths(tips []string) map[string]string {
	inPack := make(map[string]bool, len(p.blobs))
	for _, b := range p.blobs {
		inPack[b] = true
	}
	paths := map[string]string{}
	doneTree := map[string]bool{}
	var walkTree func(id, prefix string)
	walkTree = func(id, prefix string) {
		if doneTree[id] {
			return
		}
		doneTree[id] = true
		for _, e := range p.trees[id] {
			path := prefix + e.name
			if e.tree {
				walkTree(e.id, path+"/")
			} else if inPack[e.id] {
				if _, ok := paths[e.id]; !ok {
					paths[e.id] = path
				}
			}
		}
	}
	seen := map[string]bool{}
	stack := append([]string(nil), tips...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, ok := p.commits[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		walkTree(c.tree, "")
		stack = append(stack, c.parents...)
	}
	return paths
}

// Blobs lists the pack's blob ids in pack order.
func (p *Pack) Blobs() []string { return p.blobs }

// Blob opens blob id's content.
func (p *Pack) Blob(id string) (io.ReadCloser, int64, error) {
	o, err := p.pf.Get(plumbing.NewHash(id))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: blob %s: %w", ErrBadPack, id, err)
	}
	r, err := o.Reader()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: blob %s: %w", ErrBadPack, id, err)
	}
	return r, o.Size(), nil
}

// DefaultMaxObject is the largest object (inflated, or a delta's result)
// a pack may hold for OpenPack: go-git holds a delta's base, and the
// object being resolved, whole in memory.
const DefaultMaxObject = 512 << 20

// checkPack reads the pack's object headers, inflating each object once
// (to find where it ends) without keeping it, and refuses a pack whose
// objects, or the results of its deltas, are larger than maxObject: a
// few megabytes of zlib can declare gigabytes, which the parser would
// then allocate.
func checkPack(r io.Reader, maxObject int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("%w: header: %w", ErrBadPack, err)
	}
	if string(hdr[:4]) != "PACK" {
		return fmt.Errorf("%w: no PACK signature", ErrBadPack)
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != 2 && v != 3 {
		return fmt.Errorf("%w: version %d", ErrBadPack, v)
	}
	count := binary.BigEndian.Uint32(hdr[8:12])
	var zr io.ReadCloser
	for i := uint32(0); i < count; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
		}
		typ := (c >> 4) & 7
		size := int64(c & 15)
		for shift := 4; c&0x80 != 0; shift += 7 {
			if shift > 56 {
				return fmt.Errorf("%w: object %d: size too long", ErrBadPack, i)
			}
			if c, err = br.ReadByte(); err != nil {
				return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
			}
			size |= int64(c&0x7f) << shift
		}
		if size > maxObject {
			return fmt.Errorf("%w: object %d is %d bytes, over %d", ErrBadPack, i, size, maxObject)
		}
		switch typ {
		case 6: // ofs-delta: a varint offset
			for {
				if c, err = br.ReadByte(); err != nil {
					return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
				}
				if c&0x80 == 0 {
					break
				}
			}
		case 7: // ref-delta: the base's id
			if _, err := br.Discard(20); err != nil {
				return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
			}
		case 1, 2, 3, 4:
		default:
			return fmt.Errorf("%w: object %d has type %d", ErrBadPack, i, typ)
		}
		if zr == nil {
			zr, err = zlib.NewReader(br)
		} else {
			err = zr.(zlib.Resetter).Reset(br, nil)
		}
		if err != nil {
			return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
		}
		lr := &io.LimitedReader{R: zr, N: size + 1}
		if typ >= 6 {
			// A delta starts with its base's size and its result's.
			dr := bufio.NewReader(lr)
			base, err1 := binary.ReadUvarint(dr)
			target, err2 := binary.ReadUvarint(dr)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("%w: object %d: delta header: %w", ErrBadPack, i, err)
			}
			if base > uint64(maxObject) || target > uint64(maxObject) {
				return fmt.Errorf("%w: object %d is a delta to %d bytes, over %d", ErrBadPack, i, target, maxObject)
			}
			if _, err := io.Copy(io.Discard, dr); err != nil {
				return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
			}
		} else if _, err := io.Copy(io.Discard, lr); err != nil {
			return fmt.Errorf("%w: object %d: %w", ErrBadPack, i, err)
		}
		if lr.N != 1 {
			return fmt.Errorf("%w: object %d inflates to other than its %d bytes", ErrBadPack, i, size)
		}
	}
	return nil
}
