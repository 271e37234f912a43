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
	resp, err := client.Get(srv.Endpoint() + "/version")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var version struct {
		Server string `json:"etcdserver"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&version); err != nil {
		log.Fatal(err)
	}
	fmt.Println(version.Server)
	// Output: 3.7.3
}
