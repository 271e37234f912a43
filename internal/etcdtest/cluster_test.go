package etcdtest

import (
	"slices"
	"testing"
)

func TestCluster(t *testing.T) {
	c := NewCluster(t, 3, Config{})
	if got, want := c.Size(), 3; got != want {
		t.Fatalf("Size() = %d, want %d", got, want)
	}
	eps := c.Endpoints()
	if len(eps) != 3 || len(slices.Compact(slices.Sorted(slices.Values(eps)))) != 3 {
		t.Fatalf("Endpoints() = %q, want 3 distinct endpoints", eps)
	}
	gws := make([]*gateway, 3)
	for i, ep := range eps {
		if got := c.Member(i).Endpoint(); got != ep {
			t.Errorf("Member(%d).Endpoint() = %q, want %q", i, got, ep)
		}
		gws[i] = newGateway(t, ep, nil)
	}

	gws[0].put("replicated", "one")
	if value, _, _ := gws[2].get("replicated"); value != "one" {
		t.Errorf("range on member 2 after put on member 0 = %q, want one", value)
	}

	// With one member down the other two still form a quorum.
	if err := c.Member(1).Stop(); err != nil {
		t.Fatalf("stop member 1: %v", err)
	}
	gws[0].put("while-down", "two")
	if value, _, _ := gws[2].get("while-down"); value != "two" {
		t.Errorf("range on member 2 with member 1 down = %q, want two", value)
	}
	if _, _, err := gws[1].try("GET", "/version", nil); err == nil {
		t.Error("GET /version on stopped member 1 succeeded, want a dial error")
	}

	// The member comes back on its ports and catches up.
	if err := c.Member(1).Restart(); err != nil {
		t.Fatalf("restart member 1: %v", err)
	}
	if got := c.Member(1).Endpoint(); got != eps[1] {
		t.Errorf("member 1 endpoint after restart = %q, want %q", got, eps[1])
	}
	if value, _, _ := gws[1].get("while-down"); value != "two" {
		t.Errorf("range on restarted member 1 = %q, want two", value)
	}
}

func TestTLSCluster(t *testing.T) {
	c := NewCluster(t, 3, Config{ClientCertAuth: true})
	cfg, err := c.Certs().ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	newGateway(t, c.Endpoints()[0], cfg).put("shared", "certs")
	if value, _, _ := newGateway(t, c.Endpoints()[2], cfg).get("shared"); value != "certs" {
		t.Errorf("range on member 2 = %q, want certs", value)
	}
	for i := range c.Size() {
		if c.Member(i).Certs() != c.Certs() {
			t.Errorf("member %d has its own certificates, want the cluster's", i)
		}
	}
}
