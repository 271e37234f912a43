package etcdgw_test

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

// shared is the plain etcd that most tests use, each under a key prefix of
// its own; tests that need a server configured otherwise start their own.
var shared *etcdtest.Server

func TestMain(m *testing.M) {
	if serveBenchChild() {
		return
	}
	code := func() int {
		s, err := etcdtest.StartServer(etcdtest.Config{Name: "shared"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting etcd:", err)
			return 1
		}
		shared = s
		endpoint = s.Endpoint() // the examples'
		defer s.Close()
		defer stopBenchServer()
		return m.Run()
	}()
	// A server left open in external mode is a process, not a goroutine.
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
	return fmt.Sprintf("/t/%s-%d/", name, prefixSeq.Add(1))
}

// newClient returns a client of the shared server, closed at the end of the test.
func newClient(t testing.TB, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	opts = append([]etcdgw.Option{etcdgw.WithEndpoints(shared.Endpoint())}, opts...)
	c, err := etcdgw.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefixedClient is newClient under a fresh key prefix, which it returns.
func prefixedClient(t testing.TB, opts ...etcdgw.Option) (*etcdgw.Client, string) {
	p := testPrefix(t)
	return newClient(t, append([]etcdgw.Option{etcdgw.WithKeyPrefix(p)}, opts...)...), p
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// etcdtestConfig is what tests vary in their own servers.
type etcdtestConfig struct {
	progress time.Duration
}

// newServer starts an etcd of the test's own, stopped at its end.
func newServer(t testing.TB, cfg etcdtestConfig) *etcdtest.Server {
	return etcdtest.NewServer(t, etcdtest.Config{WatchProgressNotifyInterval: cfg.progress})
}

// newClientOf returns a client of these endpoints, closed at the end of the test.
func newClientOf(t testing.TB, endpoints ...string) *etcdgw.Client {
	t.Helper()
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoints...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
