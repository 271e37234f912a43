package etcdtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestCloseLeavesNoGoroutines checks right after Close, not only when the
// binary ends, that servers and clusters leave nothing running.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	opts := append(LeakOptions(), goleak.IgnoreCurrent())

	s, err := StartServer(Config{ClientCertAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Certs().ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway(t, s.Endpoint(), cfg)
	w := startWatch(t, gw.client, gw.base, "k")
	gw.put("k", "v")
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	w.drain(t)
	gw.put("k", "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := StartCluster(3, Config{})
	if err != nil {
		t.Fatal(err)
	}
	cgw := newGateway(t, c.Endpoints()[1], nil)
	cw := startWatch(t, cgw.client, cgw.base, "k")
	if err := c.Member(0).Stop(); err != nil {
		t.Fatal(err)
	}
	cgw.put("k", "v")
	if err := c.Member(0).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	cw.drain(t)

	gw.client.CloseIdleConnections()
	cgw.client.CloseIdleConnections()
	goleak.VerifyNone(t, opts...)
}
