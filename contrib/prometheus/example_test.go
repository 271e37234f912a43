package etcdgwprom_test

import (
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcdgw/etcdgw"
	etcdgwprom "github.com/etcdgw/etcdgw/contrib/prometheus"
)

// The collectors registered once, their observer given to each client.
func ExampleNew() {
	m := etcdgwprom.New()
	prometheus.MustRegister(m)
	c, err := etcdgw.New(etcdgw.WithEndpoints("http://127.0.0.1:2379"), etcdgw.WithObserver(m.Observer()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
