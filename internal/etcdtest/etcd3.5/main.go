// Command etcd3.5 is the etcd 3.5 server, built from the module proxy for the
// compatibility run (scripts/compat.sh). It is its own module because it
// cannot share the main module's etcd version; nothing in the main module
// imports it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
