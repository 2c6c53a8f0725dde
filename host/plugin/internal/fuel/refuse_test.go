package fuel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// wasmModule assembles a binary module from sections (id, then payload).
func wasmModule(secs ...[]byte) []byte {
	b := append(append([]byte(nil), magic...), version...)
	for _, s := range secs {
		b = append(b, s[0])
		b = appendU32(b, uint32(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

func sec(id byte, payload ...byte) []byte { return append([]byte{id}, payload...) }

// oneFunc is a module with one () -> () function whose body is code
// (without locals or the final end), plus extra sections.
func oneFunc(code []byte, extra ...[]byte) []byte {
	body := append(append([]byte{0}, code...), opEnd)
	secs := [][]byte{
		sec(secType, 1, 0x60, 0, 0),
		sec(secFunction, 1, 0),
	}
	secs = append(secs, extra...)
	secs = append(secs, sec(secCode, append([]byte{1, byte(len(body))}, body...)...))
	return wasmModule(secs...)
}

func TestRefuse(t *testing.T) {
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	cat := func(b ...[]byte) []byte {
		var out []byte
		for _, x := range b {
			out = append(out, x...)
		}
		return out
	}
	cases := []struct {
		name, want string
		wasm       []byte
	}{
		{"bad magic", "bad magic", []byte("\x00asn\x01\x00\x00\x00")},
		{"truncated", "unexpected end", oneFunc(nil)[:20]},
		{"SIMD opcode", "unknown opcode 0xfd", oneFunc([]byte{0xfd, 0x0c})},
		{"threads opcode", "unknown opcode 0xfe", oneFunc([]byte{0xfe, 0x03, 0x00})},
		{"exceptions try", "unknown opcode 0x06", oneFunc([]byte{0x06, 0x40, opEnd})},
		{"exceptions throw", "unknown opcode 0x08", oneFunc([]byte{0x08, 0x00})},
		{"GC opcode", "unknown opcode 0xfb", oneFunc([]byte{0xfb, 0x00})},
		{"call_ref", "unknown opcode 0x14", oneFunc([]byte{0x14, 0x00})},
		{"unknown 0xfc", "unknown opcode 0xfc 18", oneFunc([]byte{0xfc, 18})},
		{"GC type", "GC proposal", wasmModule(sec(secType, 1, 0x5f, 0))},
		{"v128 local", "SIMD", wasmModule(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0), sec(secCode, 1, 4, 1, 1, 0x7b, opEnd))},
		{"tag section", "exception handling", wasmModule(sec(secTag, 0))},
		{"shared memory", "threads", wasmModule(sec(secMemory, 1, 3, 1, 1))},
		{"memory64", "memory64", wasmModule(sec(secMemory, 1, 4, 1))},
		{"imports refill", "already imports", wasmModule(sec(secType, 1, 0x60, 1, 0x7e, 1, 0x7e),
			sec(secImport, cat([]byte{1}, name(ImportModule), name(ImportName), []byte{0, 0})...))},
		{"imports fuel global", "imports a global", wasmModule(
			sec(secImport, cat([]byte{1}, name("other"), name(GlobalName), []byte{3, 0x7e, 1})...))},
		{"exports fuel global", "already exports", wasmModule(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0),
			sec(secExport, cat([]byte{1}, name(GlobalName), []byte{0, 0})...), sec(secCode, 1, 2, 0, opEnd))},
		{"global.get beyond globals", "global index 0 out of range", oneFunc([]byte{opGlobalGet, 0, 0x1a})},
		{"global.set beyond globals", "global index 1 out of range", oneFunc([]byte{0x42, 0, opGlobalSet, 1},
			sec(secGlobal, 1, 0x7e, 1, 0x42, 0, opEnd))},
		{"global.get in constant", "global index 0 out of range", wasmModule(sec(secGlobal, 1, 0x7e, 0, 0x23, 0, opEnd))},
		{"call beyond functions", "function index 1 out of range", oneFunc([]byte{opCall, 1})},
		{"call_indirect refill type", "type index 1 out of range", oneFunc([]byte{0x41, 0, 0x11, 1, 0},
			sec(secTable, 1, 0x70, 0, 1))},
		{"block type beyond types", "block type 1", oneFunc([]byte{opBlock, 1, opEnd})},
		{"multi-memory memarg", "multi-memory", oneFunc([]byte{0x41, 0, 0x28, 0x40, 1, 0, 0x1a})},
		{"trailing code", "trailing bytes", oneFunc([]byte{opEnd, 0x01})},
		{"section order", "out of order", wasmModule(sec(secFunction, 0), sec(secType, 0))},
		{"element flags", "element segment flags", wasmModule(sec(secElement, 1, 8))},
		{"huge vector", "exceeds input", wasmModule(sec(secType, 0xff, 0xff, 0xff, 0xff, 0x0f))},
		{"code without functions", "bodies", wasmModule(sec(secCode, 1, 2, 0, opEnd))},
		{"function without code", "without code", wasmModule(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Rewrite(c.wasm)
			if err == nil {
				t.Fatalf("accepted: %x", out)
			}
			if !strings.HasPrefix(err.Error(), "fuel: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// TestDropsDebugSections checks DWARF and source maps are dropped and other
// custom sections kept.
func TestDropsDebugSections(t *testing.T) {
	custom := func(n string) []byte { return sec(secCustom, append(append([]byte{byte(len(n))}, n...), 1, 2, 3)...) }
	in := wasmModule(custom(".debug_info"), custom("producers"), custom("sourceMappingURL"), custom(".debug_line"))
	out, err := Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := splitSections(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		if s.id == secCustom {
			names = append(names, s.name)
		}
	}
	if strings.Join(names, ",") != "producers" {
		t.Errorf("custom sections: %v", names)
	}
	r := wazero.NewRuntime(context.Background())
	defer r.Close(context.Background())
	if _, err := r.CompileModule(context.Background(), out); err != nil {
		t.Error(err)
	}
}

// FuzzRewrite checks Rewrite never panics, and that whenever wazero
// compiles both the input and Rewrite's output, or only the output, it does
// so without crashing. An input wazero accepts must stay acceptable.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(oneFunc([]byte{opLoop, 0x40, opBr, 0, opEnd}))
	f.Add(oneFunc([]byte{0x41, 0, 0x41, 0, 0x41, 1, 0xfc, 11, 0}, sec(secMemory, 1, 0, 1)))
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Rewrite(wasm)
		if err != nil {
			return
		}
		cm, err := r.CompileModule(ctx, out)
		if err == nil {
			cm.Close(ctx)
			return
		}
		if cm, origErr := r.CompileModule(ctx, wasm); origErr == nil {
			cm.Close(ctx)
			t.Fatalf("wazero compiles the input but not the rewrite: %v", err)
		}
	})
}
