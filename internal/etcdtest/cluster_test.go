package etcdtest

import (
	"slices"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// waitLeader polls until a member other than not leads the cluster.
func waitLeader(t *testing.T, c *Cluster, not int) int {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if l := c.Leader(); l >= 0 && l != not {
			return l
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no leader other than %d after 10 s", not)
		}
	}
}

func TestClusterLeaderAndFullRestart(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 3, Config{})
	leader := waitLeader(t, c, -1)

	// Stopping the leader hands leadership over.
	if err := c.Member(leader).Stop(); err != nil {
		t.Fatal(err)
	}
	next := waitLeader(t, c, leader)
	rev := newGateway(t, c.Endpoints()[next], nil).put("survives", "restart")

	// One member alone could never become ready: Restart starts them all.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Size() {
		if c.Member(i).Running() {
			t.Errorf("member %d runs after Cluster.Stop", i)
		}
	}
	if got := c.Leader(); got != -1 {
		t.Errorf("Leader() of a stopped cluster = %d, want -1", got)
	}
	if err := c.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	value, _, gotRev := newGateway(t, c.Endpoints()[leader], nil).get("survives")
	if value != "restart" || gotRev != rev {
		t.Errorf("after a full restart, survives = %q at revision %d, want restart at %d", value, gotRev, rev)
	}
}
