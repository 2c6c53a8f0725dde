//go:build wasip1

// Command guest is the Go guest fixture of package fuel's tests, built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import "unsafe"

var buf [64 << 10]byte

// spinCount is global so the compiler keeps the infinite loop's work.
var spinCount uint64

//go:wasmexport loop
func loop(n int64) int64 {
	var s int64
	for i := int64(0); i < n; i++ {
		s += i ^ (s >> 3)
	}
	return s
}

//go:wasmexport buf
func bufPtr() uint32 { return uint32(uintptr(unsafe.Pointer(&buf[0]))) }

// mask XORs the first n bytes of buf with key and returns a checksum.
//
//go:wasmexport mask
func mask(n, key uint32) uint32 {
	b := buf[:min(int(n), len(buf))]
	var sum uint32
	for i := range b {
		b[i] ^= byte(key >> (8 * (i & 3)))
		sum = sum*31 + uint32(b[i])
	}
	return sum
}

//go:wasmexport noop
func noop() {}

//go:wasmexport spin
func spin() {
	for {
		spinCount++
	}
}

func main() {}
