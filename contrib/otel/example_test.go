package etcdgwotel_test

import (
	"log"

	"github.com/etcdgw/etcdgw"
	etcdgwotel "github.com/etcdgw/etcdgw/contrib/otel"
)

// Spans and metrics of every call, through the global providers.
func ExampleObserver() {
	obs, err := etcdgwotel.Observer()
	if err != nil {
		log.Fatal(err)
	}
	c, err := etcdgw.New(etcdgw.WithEndpoints("http://127.0.0.1:2379"), etcdgw.WithObserver(obs))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
