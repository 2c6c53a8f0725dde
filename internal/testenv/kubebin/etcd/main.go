// Command etcd is the etcd server (go.etcd.io/etcd/server/v3's etcdmain),
// the API server's store in the tests' control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
