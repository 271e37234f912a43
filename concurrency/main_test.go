package concurrency_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// shared is the etcd that the tests use, each under names of its own.
var shared *etcdtest.Server

func TestMain(m *testing.M) {
	code := func() int {
		s, err := etcdtest.StartServer(etcdtest.Config{Name: "concurrency"})
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

var seq atomic.Int64

// testPrefix is a key prefix (or a name) no other test uses.
func testPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/c/%s-%d/", name, seq.Add(1))
}

// newClient returns a client of endpoint (the shared server when empty),
// closed at the end of the test.
func newClient(t testing.TB, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	opts = append([]etcdgw.Option{etcdgw.WithEndpoints(shared.Endpoint())}, opts...)
	c, err := etcdgw.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// newSession returns a session of c, closed at the end of the test.
func newSession(t testing.TB, c *etcdgw.Client, opts ...concurrency.SessionOption) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// closedWithin reports whether ch closes within d.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
