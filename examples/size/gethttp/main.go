// Command gethttp reads one key with net/http and encoding/json alone, and no
// etcd package: the floor for any gateway client in examples/size.
//
//	ETCD_ENDPOINTS=http://127.0.0.1:2379 go run ./examples/size/gethttp key
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
)

type kv struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: gethttp key")
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
	var r struct{ Kvs []kv }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		log.Fatal(err)
	}
	for _, kv := range r.Kvs {
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
}
