package etcdgwtest_test

import (
	"context"
	"testing"

	"github.com/etcdgw/etcdgw/etcdgwtest"
)

// A test of a program's own code against a real etcd: the server and the
// client are closed when the test ends.
func Example() {
	var t *testing.T // the test's: func TestConfigStore(t *testing.T) { ... }

	srv := etcdgwtest.NewServer(t, etcdgwtest.WithTLS())
	c := srv.Client(t)
	if _, err := c.Set(context.Background(), "config/port", 8080); err != nil {
		t.Fatal(err)
	}

	// Fault handling: the program reaches etcd through a proxy that the
	// test cuts, pauses and refuses.
	p := etcdgwtest.NewProxy(t, srv.Endpoint())
	_ = p.Endpoint() // give this to the code under test
	p.Cut()
}
