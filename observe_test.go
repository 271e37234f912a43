package etcdgw_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// recorder is an Observer that records what it is told.
type recorder struct {
	mu         sync.Mutex
	started    []string
	done       []etcdgw.CallResult
	doneMethod []string
	attempts   []etcdgw.AttemptInfo
	health     []string
	reconnects []etcdgw.WatchReconnectInfo
	tokens     []error
	ctxSeen    int // CallDone saw the context CallStart returned
}

type ctxKey struct{}

func (r *recorder) observer() etcdgw.Observer {
	return etcdgw.Observer{
		CallStart: func(ctx context.Context, call etcdgw.CallInfo) context.Context {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.started = append(r.started, call.Method)
			return context.WithValue(ctx, ctxKey{}, call.Method)
		},
		CallDone: func(ctx context.Context, call etcdgw.CallInfo, res etcdgw.CallResult) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if ctx.Value(ctxKey{}) == call.Method {
				r.ctxSeen++
			}
			r.done = append(r.done, res)
			r.doneMethod = append(r.doneMethod, call.Method)
		},
		Attempt: func(ctx context.Context, call etcdgw.CallInfo, a etcdgw.AttemptInfo) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.attempts = append(r.attempts, a)
		},
		EndpointHealth: func(endpoint string, healthy bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if healthy {
				r.health = append(r.health, "up "+endpoint)
			} else {
				r.health = append(r.health, "down "+endpoint)
			}
		},
		WatchReconnect: func(ctx context.Context, w etcdgw.WatchReconnectInfo) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.reconnects = append(r.reconnects, w)
		},
		TokenRefresh: func(ctx context.Context, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.tokens = append(r.tokens, err)
		},
	}
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started, r.done, r.doneMethod, r.attempts, r.health, r.reconnects, r.tokens, r.ctxSeen = nil, nil, nil, nil, nil, nil, nil, 0
}

func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{started: append([]string(nil), r.started...), done: append([]etcdgw.CallResult(nil), r.done...),
		doneMethod: append([]string(nil), r.doneMethod...), attempts: append([]etcdgw.AttemptInfo(nil), r.attempts...),
		health: append([]string(nil), r.health...), reconnects: append([]etcdgw.WatchReconnectInfo(nil), r.reconnects...),
		tokens: append([]error(nil), r.tokens...), ctxSeen: r.ctxSeen}
}

func TestObserverCalls(t *testing.T) {
	rec := &recorder{}
	var reqCtx sync.Map // method -> seen in a request's context
	c, _ := prefixedClient(t, etcdgw.WithObserver(rec.observer()), etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if m, ok := req.Context().Value(ctxKey{}).(string); ok {
					reqCtx.Store(m, true)
				}
				return rt.RoundTrip(req)
			})
		}))
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	got := rec.snapshot()
	require.Equal(t, []string{"Range"}, got.started)
	require.Equal(t, []string{"Range"}, got.doneMethod)
	require.NoError(t, got.done[0].Err)
	require.Equal(t, 1, got.done[0].Attempts)
	require.Equal(t, shared.Endpoint(), got.done[0].Endpoint)
	require.Positive(t, got.done[0].Duration)
	require.Equal(t, 1, got.ctxSeen, "CallDone gets the ctx CallStart returned")
	_, ok := reqCtx.Load("Range")
	require.True(t, ok, "the request carries the ctx CallStart returned")
	require.Len(t, got.attempts, 1)
	require.Equal(t, http.StatusOK, got.attempts[0].Status)

	// Set with WithTTL is a LeaseGrant then a Put.
	rec.reset()
	ttl, _ := prefixedClient(t, etcdgw.WithObserver(rec.observer()), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithTTL(5))
	_, err = ttl.Set(ctx, "k", "v")
	require.NoError(t, err)
	require.Equal(t, []string{"LeaseGrant", "Put"}, rec.snapshot().doneMethod)

	// A watch is one call, from its first connect to its channel's close.
	rec.reset()
	put, err := c.Set(ctx, "w", "1")
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	wch := c.Watch(wctx, "w", etcdgw.WithRev(put.Header.Revision))
	for wr := range wch { // the created answer may come first
		require.NoError(t, wr.Err())
		if len(wr.Events) > 0 {
			break
		}
	}
	cancel()
	for range wch {
	}
	require.Eventually(t, func() bool {
		got := rec.snapshot()
		for i, m := range got.doneMethod {
			if m == "Watch" {
				return got.done[i].Attempts >= 1 && got.done[i].Endpoint == shared.Endpoint()
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
}

func TestObserverAttemptsAndHealth(t *testing.T) {
	dead := "http://" + closedPort(t)
	rec := &recorder{}
	c, err := etcdgw.New(etcdgw.WithEndpoints(dead, shared.Endpoint()), etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithObserver(rec.observer()), etcdgw.WithHealthCheck(time.Hour, 1))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	// Round-robin from a random start: within a few calls one tries the
	// dead member first and moves on.
	for i := 0; i < 10 && !etcdgwHasDown(rec, dead); i++ {
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
	}
	got := rec.snapshot()
	require.Contains(t, got.health, "down "+dead)
	var two *etcdgw.CallResult
	for i := range got.done {
		if got.done[i].Attempts == 2 {
			two = &got.done[i]
		}
	}
	require.NotNil(t, two, "a call that moved on: %+v", got.done)
	require.NoError(t, two.Err)
	require.Equal(t, shared.Endpoint(), two.Endpoint)
	var failed int
	for _, a := range got.attempts {
		if a.Endpoint == dead {
			require.Error(t, a.Err)
			require.Zero(t, a.Status)
			failed++
		}
	}
	require.Equal(t, 1, failed, "the dead member is tried once, then skipped")
}

func etcdgwHasDown(r *recorder, ep string) bool {
	for _, h := range r.snapshot().health {
		if h == "down "+ep {
			return true
		}
	}
	return false
}

// logBuffer collects the records of a JSON handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestLoggerAndObserverOfFaults(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "logged"})
	require.NoError(t, etcdtest.EnableAuth(s.Endpoint(), nil, rootPassword))
	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	var logs logBuffer
	rec := &recorder{}
	const secret = "the-value-nobody-logs"
	c, err := etcdgw.New(etcdgw.WithEndpoints(p.Endpoint("http")), etcdgw.WithAuth("root", rootPassword),
		etcdgw.WithLogger(logs.logger()), etcdgw.WithObserver(rec.observer()))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)

	// A watch that delivered revision r resumes from r+1 after a cut.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := c.Watch(wctx, "w")
	waitCreated(t, wch)
	put, err := c.Set(ctx, "w", secret)
	require.NoError(t, err)
	rev := put.Header.Revision
	requireEvent(t, wch, "w")
	p.CutAll()
	require.Eventually(t, func() bool {
		for _, w := range rec.snapshot().reconnects {
			if w.Revision == rev+1 {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "reconnects: %+v, want revision %d", rec.snapshot().reconnects, rev+1)

	// The cut also closed the idle connection the next write would reuse:
	// a write on it could fail as of unknown outcome. A read (retried)
	// clears it out of the pool first.
	_, err = c.Get(ctx, "w")
	require.NoError(t, err)

	// A lease revoked under its KeepAlive is lost: the loop renews every
	// third of the TTL, so a short one shows it within a second.
	short, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	sch, err := c.KeepAlive(ctx, short.ID)
	require.NoError(t, err)
	_, err = c.Revoke(ctx, short.ID)
	require.NoError(t, err)
	for range sch {
	}
	cancel()
	for range wch {
	}

	out := logs.String()
	require.Contains(t, out, `"msg":"etcdgw: API prefix detected","prefix":"/v3"`)
	require.Contains(t, out, `"msg":"etcdgw: auth token fetched","user":"root"`)
	require.Contains(t, out, `"msg":"etcdgw: watch reconnecting"`)
	require.Contains(t, out, `"revision":`+strconv.FormatInt(rev+1, 10))
	require.Contains(t, out, `"msg":"etcdgw: lease lost: etcd no longer has it"`)
	require.NotContains(t, out, secret)
	require.NotContains(t, out, rootPassword)
	require.NotContains(t, strings.ToLower(out), "token\":\"")
	require.NotEmpty(t, rec.snapshot().tokens)
	require.NoError(t, rec.snapshot().tokens[0])
}

func TestObserverEndpointBackUp(t *testing.T) {
	p, err := etcdtest.NewProxy(shared.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	rec := &recorder{}
	var logs logBuffer
	ep := p.Endpoint("http")
	c, err := etcdgw.New(etcdgw.WithEndpoints(ep), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(50*time.Millisecond, 1),
		etcdgw.WithObserver(rec.observer()), etcdgw.WithLogger(logs.logger()))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	require.NoError(t, p.SetRefuse(true))
	p.CutAll()
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrUnavailable)
	require.Equal(t, []string{"down " + ep}, rec.snapshot().health)
	require.NoError(t, p.SetRefuse(false))
	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, "k")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"down " + ep, "up " + ep}, rec.snapshot().health)
	out := logs.String()
	require.Contains(t, out, `"msg":"etcdgw: endpoint marked unhealthy","endpoint":"`+ep+`"`)
	require.Contains(t, out, `"msg":"etcdgw: endpoint healthy again","endpoint":"`+ep+`"`)
}

// WatchProgress reports how far a watch is behind the store, and KeepAlive
// each renewal of a KeepAlive loop.
func TestObserverWatchProgressAndKeepAlive(t *testing.T) {
	var mu sync.Mutex
	var progress []etcdgw.WatchProgressInfo
	var renewals []etcdgw.KeepAliveInfo
	obs := etcdgw.Observer{
		WatchProgress: func(_ context.Context, w etcdgw.WatchProgressInfo) {
			mu.Lock()
			defer mu.Unlock()
			progress = append(progress, w)
		},
		KeepAlive: func(_ context.Context, k etcdgw.KeepAliveInfo) {
			mu.Lock()
			defer mu.Unlock()
			renewals = append(renewals, k)
		},
	}
	c, _ := prefixedClient(t, etcdgw.WithObserver(obs))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	// A watch from an old revision: the first batch is behind the store.
	first, err := c.Set(ctx, "a", 1)
	require.NoError(t, err)
	last, err := c.Set(ctx, "b", 2)
	require.NoError(t, err)
	ch := c.Watch(ctx, "a", etcdgw.WithRev(first.Header.Revision))
	var events int
	for events == 0 {
		r := <-ch
		events += len(r.Events)
	}
	lease, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	alive, err := c.KeepAlive(ctx, lease.ID)
	require.NoError(t, err)
	<-alive // the first renewal is KeepAlive's own call
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(renewals) > 0
	}, 10*time.Second, 10*time.Millisecond, "a renewal of the loop")

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, progress)
	require.Equal(t, first.Header.Revision, progress[0].Revision)
	require.Equal(t, 1, progress[0].Events)
	require.GreaterOrEqual(t, progress[0].Lag, last.Header.Revision-first.Header.Revision, "the store was ahead by b's write at least")
	require.Equal(t, lease.ID, renewals[0].ID)
	require.NoError(t, renewals[0].Err)
	require.Equal(t, int64(2), renewals[0].TTL)
}
