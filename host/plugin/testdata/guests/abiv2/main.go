// A plugin built for a future ABI: the host must refuse it by name.
package main

//go:wasmexport tollgate_abi_v2
func abiV2() {}

//go:wasmexport tollgate_on_event
func onEvent() int32 { return 0 }

func main() {}
