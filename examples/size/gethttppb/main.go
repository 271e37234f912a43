// Command gethttppb is gethttp decoding into mvccpb.KeyValue, the type
// etcdgw's API returns: it shows what importing mvccpb, and with it the
// protobuf runtime, costs a program.
//
//	ETCD_ENDPOINTS=http://127.0.0.1:2379 go run ./examples/size/gethttppb key
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

type kv struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: gethttppb key")
	}
	endpoint := os.Getenv("ETCD_ENDPOINTS")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:2379"
	}
	req, err := json.Marshal(kv{Key: []byte(os.Args[1])})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Post(endpoint+"/v3/kv/range", "application/json", bytes.NewReader(req))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Kvs []*mvccpb.KeyValue }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		log.Fatal(err)
	}
	for _, kv := range r.Kvs {
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
}
