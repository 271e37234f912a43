package etcdgw_test

import (
	"testing"

	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// TestServerVersion checks that the tests talk to the etcd they think they
// do: the embedded one, or the binary of a compatibility run
// (scripts/compat.sh), whose version the version-aware tests branch on.
func TestServerVersion(t *testing.T) {
	v, err := newClient(t).Version(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.Server, etcdtest.Version(); got != want {
		t.Errorf("Version().Server = %q, want %q", got, want)
	}
	// /version gained "storage" in etcd 3.6 (gateway-wire-protocol.md §9).
	if got, want := v.Storage != "", etcdtest.VersionAtLeast(3, 6); got != want {
		t.Errorf("Version().Storage = %q on etcd %s: want it set from 3.6 on", v.Storage, v.Server)
	}
}
