package etcdtest_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"

	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func ExampleStartServer() {
	srv, err := etcdtest.StartServer(etcdtest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.Endpoint() + "/health")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		log.Fatal(err)
	}
	fmt.Println(health.Health)
	// Output: true
}
