// Command getv3 reads one key with the official gRPC client, clientv3: the
// reference that examples/size measures getgw against.
//
//	ETCD_ENDPOINTS=http://127.0.0.1:2379 go run ./examples/size/getv3 key
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: getv3 key")
	}
	endpoint := os.Getenv("ETCD_ENDPOINTS")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:2379"
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
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
