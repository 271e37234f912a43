package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// Faults of real deployments, one test each: members that hang, proxies that
// answer for etcd, members that stop. fault_matrix_test.go crosses them with
// every operation.

// hungProxy is a member that accepts connections and never answers: a proxy
// to the shared server, paused before anything is sent through it.
func hungProxy(t *testing.T) *etcdtest.Proxy {
	t.Helper()
	p := tcpProxy(t, shared.ClientAddr())
	p.Pause()
	return p
}

// A member that accepts connections and never answers costs one attempt
// timeout, then is skipped: no read fails while another member answers.
func TestHungMemberReadsFailOver(t *testing.T) {
	t.Parallel()
	hung := hungProxy(t)
	prefix := testPrefix(t)
	// The default attempt timeout, derived from the 5s default deadline.
	c := newClientOf(t, hung.Endpoint("http"), shared.Endpoint())
	ctx := testCtx(t)
	_, err := newClient(t).Set(ctx, prefix+"k", "v")
	require.NoError(t, err)
	for i := range 20 {
		start := time.Now()
		r, err := c.Get(context.Background(), prefix+"k")
		require.NoError(t, err, "get %d", i)
		require.Len(t, r.Kvs, 1)
		assert.Less(t, time.Since(start), etcdgw.DefaultTimeout, "get %d waited for its whole deadline", i)
	}
	assert.False(t, etcdgw.EndpointHealthy(c, hung.Endpoint("http")), "the hung member is marked")
	assert.Positive(t, hung.Accepted(), "the hung member was tried")
}

// With one member that hangs, a read ends at its deadline with an error that
// says so and says why: ErrUnavailable and the context's error.
func TestHungLoneMemberReadEndsAtDeadline(t *testing.T) {
	t.Parallel()
	hung := hungProxy(t)
	c := clientOf(t, hung.Endpoint("http"), etcdgw.WithAPIPrefix("/v3"))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "k")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second, "the call outlived its deadline")
	assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
}

// A write sent to a member that never answers may have been applied: its
// deadline ends it with ErrOutcomeUnknown, and the context's error.
func TestWriteDeadlineAfterSendingIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	hung := hungProxy(t)
	c := clientOf(t, hung.Endpoint("http"), etcdgw.WithAPIPrefix("/v3"))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Set(ctx, testPrefix(t)+"k", "v")
	require.Error(t, err)
	assert.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, strings.Count(err.Error(), "etcdgw: "), "one prefix: %v", err)
}

// A write to a member that refuses the connection was never sent: it fails
// over, or fails with ErrUnavailable, never with ErrOutcomeUnknown.
func TestWriteToRefusingMemberIsNotOutcomeUnknown(t *testing.T) {
	t.Parallel()
	p := tcpProxy(t, shared.ClientAddr())
	require.NoError(t, p.SetRefuse(true))
	prefix := testPrefix(t)
	c := clientOf(t, p.Endpoint("http"), etcdgw.WithAPIPrefix("/v3"))
	_, err := c.Set(testCtx(t), prefix+"k", "v")
	require.Error(t, err)
	assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
	assert.NotErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "is etcd running there")

	// The next call finds no healthy member, and says what the last failure was.
	_, err = c.Get(testCtx(t), prefix+"k")
	require.ErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
	assert.Contains(t, err.Error(), "connection refused")

	// With a second member the write goes there.
	c2 := newClientOf(t, p.Endpoint("http"), shared.Endpoint())
	for i := range 4 {
		_, err := c2.Set(testCtx(t), fmt.Sprint(prefix, "k", i), i)
		require.NoError(t, err, "write %d", i)
	}
}

// statusGateway is a proxy that answers every request with status and body
// instead of etcd, counting them.
func statusGateway(t *testing.T, status int, body string, n *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// What a proxy or a stopping member answers instead of etcd: a read goes to
// the next member; a write is of unknown outcome, and not retried.
func TestProxyAnswersInsteadOfEtcd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"proxy 502", 502, "<html><body><h1>502 Bad Gateway</h1></body></html>"},
		{"proxy 504", 504, "upstream request timeout"},
		{"proxy 503", 503, "no healthy upstream"},
		{"etcd request timed out", 503, `{"code":14,"message":"etcdserver: request timed out"}`},
		{"etcd leader changed", 503, `{"code":14,"message":"etcdserver: leader changed"}`},
		{"etcd too many requests in flight", 503, `{"code":14,"message":"etcdserver: too many requests"}`},
		{"stopping member 499", 499, `{"code":1,"message":"grpc: the client connection is closing"}`},
		{"stopping member 408", 408, `{"error":"grpc: the client connection is closing","code":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			bad := statusGateway(t, tc.status, tc.body, &n)
			prefix := testPrefix(t)
			c, err := etcdgw.New(etcdgw.WithEndpoints(bad.URL, shared.Endpoint()), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix))
			require.NoError(t, err)
			defer c.Close()
			ctx := testCtx(t)
			_, err = newClient(t, etcdgw.WithKeyPrefix(prefix)).Set(ctx, "k", "v")
			require.NoError(t, err)

			// Reads: every one succeeds; the bad member is tried once, then skipped.
			for i := range 10 {
				r, err := c.Get(ctx, "k")
				require.NoError(t, err, "read %d", i)
				require.Len(t, r.Kvs, 1)
			}
			assert.Equal(t, int32(1), n.Load(), "the bad member was tried once, then marked")
			assert.False(t, etcdgw.EndpointHealthy(c, bad.URL))

			// Writes through the bad member alone: unknown outcome, sent once.
			lone, err := etcdgw.New(etcdgw.WithEndpoints(bad.URL), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(0, 1))
			require.NoError(t, err)
			defer lone.Close()
			n.Store(0)
			_, err = lone.Set(ctx, "k", "v2")
			require.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
			assert.Equal(t, int32(1), n.Load(), "a write of unknown outcome is never retried")
			_, err = lone.Txn(ctx).Then(etcdgw.OpPut("k", "v3")).Commit()
			assert.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
			_, err = lone.Delete(ctx, "k")
			assert.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
			_, err = lone.Grant(ctx, 10)
			assert.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
			// A read through it alone: ErrUnavailable.
			_, err = lone.Get(ctx, "k")
			assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
		})
	}
}

// An answer over the client's own WithMaxResponseBytes is nobody's failure: it
// is fetched once, no member is marked, and the next call works.
func TestResponseTooLargeIsFinalAndNobodysFailure(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	w := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	_, err := w.Set(ctx, "big", strings.Repeat("x", 8<<10))
	require.NoError(t, err)
	_, err = w.Set(ctx, "small", "x")
	require.NoError(t, err)

	recs := []*etcdtest.RecordingProxy{recordingProxy(t), recordingProxy(t), recordingProxy(t)}
	c, err := etcdgw.New(etcdgw.WithEndpoints(recs[0].Endpoint(), recs[1].Endpoint(), recs[2].Endpoint()),
		etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix), etcdgw.WithMaxResponseBytes(4<<10))
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Get(ctx, "big")
	require.ErrorIs(t, err, etcdgw.ErrResponseTooLarge)
	assert.NotErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	ranges := 0
	for _, r := range recs {
		ranges += r.Count("/v3/kv/range")
	}
	assert.Equal(t, 1, ranges, "the oversize answer was fetched once")
	for i, r := range recs {
		assert.True(t, etcdgw.EndpointHealthy(c, r.Endpoint()), "member %d marked", i)
	}
	for i := range 6 {
		_, err := c.Get(ctx, "small")
		require.NoError(t, err, "get %d after the oversize answer", i)
	}
}

// A lease kept alive through a hung member and a healthy one lives on: a
// renewal that lands on the hung member moves on before the lease expires.
func TestKeepAliveThroughHungMember(t *testing.T) {
	t.Parallel()
	hung := hungProxy(t)
	rec := recordingProxy(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(hung.Endpoint("http"), rec.Endpoint()), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, err)
	defer c.Close()
	// The first renewal may wait out an attempt timeout on the hung member
	// (half the default 5s deadline) before it reaches the other: 3s is enough.
	g, err := newClient(t).Grant(testCtx(t), 3)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.KeepAlive(ctx, g.ID)
	require.NoError(t, err)

	// Over two TTLs: renewals every second, round-robin over both members.
	end := time.After(7 * time.Second)
	renewals := 0
loop:
	for {
		select {
		case r, ok := <-ch:
			require.True(t, ok, "the KeepAlive channel closed after %d renewals: the lease was lost", renewals)
			require.Positive(t, r.TTL)
			renewals++
		case <-end:
			break loop
		}
	}
	assert.Positive(t, hung.Accepted(), "a renewal was sent to the hung member")
	ttl, err := newClient(t).TimeToLive(testCtx(t), g.ID, false)
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL, "the lease is alive")
	// Renewals require a leader, so that one cut off from it moves on.
	var withLeader int
	for _, r := range rec.Requests() {
		if r.Path == "/v3/lease/keepalive" && r.Header.Get("Grpc-Metadata-Hasleader") == "true" {
			withLeader++
		}
	}
	assert.Positive(t, withLeader, "renewals send the require-leader header")
}

// Errors a new user gets from a wrong URL say what to do.
func TestErrorsOfWrongURLsSayWhatToDo(t *testing.T) {
	t.Parallel()
	tlsSrv := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	ctx := testCtx(t)
	cases := []struct {
		name, endpoint, want string
		sentinel             error
	}{
		{"https to a plain server", strings.Replace(shared.Endpoint(), "http://", "https://", 1), "use http://", etcdgw.ErrUnavailable},
		{"http to a TLS server", strings.Replace(tlsSrv.Endpoint(), "https://", "http://", 1), "use https://", etcdgw.ErrUnavailable},
		{"the peer port", "http://" + shared.PeerAddr(), "peer port", nil},
		{"nothing listening", "http://" + closedPort(t), "is etcd running there", etcdgw.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []etcdgw.Option
			if strings.HasPrefix(tc.endpoint, "https") {
				opts = append(opts, etcdgw.WithInsecureSkipVerify())
			}
			c := clientOf(t, tc.endpoint, append(opts, etcdgw.WithAPIPrefix("/v3"))...)
			_, err := c.Get(ctx, "k")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 1, strings.Count(err.Error(), "etcdgw: "), "one prefix: %v", err)
			if tc.sentinel != nil {
				assert.ErrorIs(t, err, tc.sentinel)
			}
			// Detecting the API prefix says it once too.
			c2 := clientOf(t, tc.endpoint, opts...)
			_, err = c2.Get(ctx, "k")
			require.Error(t, err)
			assert.Equal(t, 1, strings.Count(err.Error(), "etcdgw: "), "one prefix: %v", err)
		})
	}
}

// Something that answers /version but is not etcd gets an error, not a
// panic, on every call.
func TestVersionWithoutEtcdserver(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"version":"1.2.3"}`)
	}))
	t.Cleanup(srv.Close)
	c := clientOf(t, srv.URL)
	for range 2 {
		_, err := c.Get(testCtx(t), "k")
		require.ErrorIs(t, err, etcdgw.ErrMalformedResponse)
		assert.Contains(t, err.Error(), "etcd's client URL")
	}
	_, err := c.Version(testCtx(t))
	require.ErrorIs(t, err, etcdgw.ErrMalformedResponse)
}

// Calls ended by Close say so, and a write cut by Close is of unknown outcome.
func TestCloseEndsCallsInFlight(t *testing.T) {
	t.Parallel()
	hung := hungProxy(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(hung.Endpoint("http")), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithTimeout(0))
	require.NoError(t, err)
	errs := make(chan error, 2)
	go func() { _, err := c.Get(context.Background(), "k"); errs <- err }()
	go func() { _, err := c.Set(context.Background(), "k", "v"); errs <- err }()
	require.Eventually(t, func() bool { return hung.Conns() >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	var got []error
	for range 2 {
		select {
		case err := <-errs:
			got = append(got, err)
		case <-time.After(10 * time.Second):
			t.Fatal("a call outlived Close")
		}
	}
	unknown := 0
	for _, err := range got {
		assert.ErrorIs(t, err, etcdgw.ErrClosed)
		if errors.Is(err, etcdgw.ErrOutcomeUnknown) {
			unknown++
		}
	}
	assert.Equal(t, 1, unknown, "the write is of unknown outcome: %v", got)
}
