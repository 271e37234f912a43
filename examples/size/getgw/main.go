// Command getgw is the smallest useful etcdgw program: it reads one key. It is
// what examples/size measures against getv3, the same with clientv3.
//
//	ETCD_ENDPOINTS=http://127.0.0.1:2379 go run ./examples/size/getgw key
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/etcdgw/etcdgw"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: getgw key")
	}
	endpoint := os.Getenv("ETCD_ENDPOINTS")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:2379"
	}
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Get(ctx, os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range r.Kvs {
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
}
