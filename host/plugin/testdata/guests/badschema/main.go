// A plugin that declares a config schema the host must refuse: the one
// its config names in "schema" (read raw, not through sdk.Config).
package main

import (
	"encoding/json"
	"unsafe"

	"github.com/tollgate-dev/tollgate/sdk"
)

//go:wasmimport tollgate config
func hostConfig(buf unsafe.Pointer, cap uint32) int32

//go:wasmimport tollgate config_schema
func hostConfigSchema(p unsafe.Pointer, n uint32)

func init() {
	buf := make([]byte, 1<<16)
	n := hostConfig(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	var cfg struct {
		Schema string `json:"schema"`
		Huge   bool   `json:"huge"`
	}
	if n > 0 && int(n) <= len(buf) {
		json.Unmarshal(buf[:n], &cfg)
	}
	s := []byte(cfg.Schema)
	if cfg.Huge {
		s = make([]byte, 1<<20)
	}
	if len(s) > 0 {
		hostConfigSchema(unsafe.Pointer(&s[0]), uint32(len(s)))
	} else {
		hostConfigSchema(nil, 1<<31) // a length past the guest's memory
	}
	sdk.Subscribe("*")
	sdk.HandleEvent(func(sdk.Event) sdk.Verdict { return sdk.Allow() })
}

func main() {}
