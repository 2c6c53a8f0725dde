// A wasip1 module that is not a Tollgate plugin: no ABI export.
package main

//go:wasmexport tollgate_on_event
func onEvent() int32 { return 0 }

func main() {}
