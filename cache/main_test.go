package cache_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// shared is the etcd most tests use, each under a key prefix of its own.
var shared *etcdtest.Server

func TestMain(m *testing.M) {
	code := func() int {
		s, err := etcdtest.StartServer(etcdtest.Config{Name: "cache"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting etcd:", err)
			return 1
		}
		shared = s
		defer s.Close()
		return m.Run()
	}()
	if err := etcdtest.CheckProcesses(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(etcdtest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var prefixSeq atomic.Int64

// testPrefix is a key prefix no other test uses.
func testPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/cache/%s-%d/", name, prefixSeq.Add(1))
}

// clientOf returns a client of these endpoints under the key prefix, closed
// at the end of the test.
func clientOf(t testing.TB, prefix string, endpoints []string, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	c, err := etcdgw.New(append([]etcdgw.Option{etcdgw.WithEndpoints(endpoints...), etcdgw.WithKeyPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newClient returns a client of the shared server under a fresh key prefix.
func newClient(t testing.TB, opts ...etcdgw.Option) *etcdgw.Client {
	return clientOf(t, testPrefix(t), []string{shared.Endpoint()}, opts...)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
