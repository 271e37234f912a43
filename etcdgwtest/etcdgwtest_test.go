package etcdgwtest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/etcdgwtest"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(etcdtest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerStopRestart(t *testing.T) {
	srv := etcdgwtest.NewServer(t)
	require.Empty(t, srv.CAFile())
	c := srv.Client(t, etcdgw.WithHealthCheck(0, 1))
	ctx := ctxOf(t)
	_, err := c.Set(ctx, "k", "v")
	require.NoError(t, err)

	srv.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Get(short, "k")
	require.ErrorIs(t, err, etcdgw.ErrUnavailable)

	srv.Restart()
	r, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1, "the data survives a restart")
}

func TestServerTLSAndAuth(t *testing.T) {
	srv := etcdgwtest.NewServer(t, etcdgwtest.WithTLS(), etcdgwtest.WithAuth("s3cret"))
	require.Regexp(t, `^https://127\.0\.0\.1:\d+$`, srv.Endpoint())
	require.NotEmpty(t, srv.CAFile())
	ctx := ctxOf(t)
	_, err := srv.Client(t).Set(ctx, "k", "v")
	require.NoError(t, err)
	st, err := srv.Client(t).AuthStatus(ctx)
	require.NoError(t, err)
	require.True(t, st.Enabled)

	// Without credentials etcd refuses.
	anon, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithCAFile(srv.CAFile()))
	require.NoError(t, err)
	defer anon.Close()
	_, err = anon.Get(ctx, "k")
	require.Error(t, err)
}

func TestServerClientCertAuth(t *testing.T) {
	srv := etcdgwtest.NewServer(t, etcdgwtest.WithClientCertAuth())
	cert, key := srv.ClientCertFiles()
	require.NotEmpty(t, cert)
	require.NotEmpty(t, key)
	ctx := ctxOf(t)
	_, err := srv.Client(t).Get(ctx, "k")
	require.NoError(t, err)

	noCert, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithCAFile(srv.CAFile()), etcdgw.WithHealthCheck(0, 1))
	require.NoError(t, err)
	defer noCert.Close()
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = noCert.Get(short, "k")
	require.Error(t, err, "a client without a certificate is refused")
}

func TestServerWithConfig(t *testing.T) {
	srv := etcdgwtest.NewServer(t, etcdgwtest.WithConfig(func(ec *embed.Config) { ec.MaxTxnOps = 2 }))
	c := srv.Client(t)
	ctx := ctxOf(t)
	_, err := c.Txn(ctx).Then(etcdgw.OpPut("a", 1), etcdgw.OpPut("b", 2), etcdgw.OpPut("c", 3)).Commit()
	require.ErrorIs(t, err, etcdgw.ErrTooManyOps)
}

func TestClusterAndProxy(t *testing.T) {
	cl := etcdgwtest.NewCluster(t, 3)
	require.Len(t, cl.Endpoints(), 3)
	c := cl.Client(t)
	ctx := ctxOf(t)
	_, err := c.Set(ctx, "k", "v")
	require.NoError(t, err)
	cl.Member(0).Stop()
	r, err := c.Get(ctx, "k")
	require.NoError(t, err, "two members of three serve")
	require.Len(t, r.Kvs, 1)
	cl.Member(0).Restart()
	r, err = cl.Member(0).Client(t).Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)

	p := etcdgwtest.NewProxy(t, cl.Member(1).Endpoint())
	pc, err := etcdgw.New(etcdgw.WithEndpoints(p.Endpoint()), etcdgw.WithHealthCheck(0, 1))
	require.NoError(t, err)
	defer pc.Close()
	_, err = pc.Get(ctx, "k")
	require.NoError(t, err)

	p.Refuse(true)
	p.Cut()
	_, err = pc.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrUnavailable)
	p.Refuse(false)
	_, err = pc.Get(ctx, "k")
	require.NoError(t, err)

	p.Pause()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = pc.Get(short, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	p.Resume()
	_, err = pc.Get(ctx, "k")
	require.NoError(t, err)
}
