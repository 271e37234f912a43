package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// proxied returns a fault-injecting proxy in front of the shared server.
func proxied(t *testing.T) *etcdtest.Proxy {
	t.Helper()
	p, err := etcdtest.NewProxy(shared.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestWatchBacklogCutMidCatchUp(t *testing.T) {
	w, prefix := prefixedClient(t)
	ctx := testCtx(t)
	// A backlog of several thousand revisions: transactions of 100 small
	// puts, then one put of 1 KiB a revision, written by a few goroutines
	// at once. A catching-up watcher gets at most 1,000 revisions a
	// response, about 1.5 MB here; the whole backlog is about 4.5 MB.
	const txns, puts = 1000, 3000
	var first int64
	for i := 0; i < txns; i += 100 {
		var ops []etcdgw.Op
		for j := i; j < i+100; j++ {
			ops = append(ops, etcdgw.OpPut(fmt.Sprintf("b/%05d", j), j))
		}
		r, err := w.Txn(ctx).Then(ops...).Commit()
		require.NoError(t, err)
		if i == 0 {
			first = r.Header.Revision
		}
	}
	big := strings.Repeat("v", 1<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := g; i < puts; i += 8 {
				if _, err := w.Set(ctx, fmt.Sprintf("b/rev/%04d", i), big); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	end, err := w.Get(ctx, "b/")
	require.NoError(t, err)
	last := end.Header.Revision

	want := history(t, shared.Endpoint(), prefix+"b/", first, last)
	for i := range want {
		want[i].key = strings.TrimPrefix(want[i].key, prefix)
	}
	for _, mode := range []struct {
		name string
		mux  bool
	}{{"a request per watch", false}, {"WebSocket", true}} {
		t.Run(mode.name, func(t *testing.T) {
			// The first two connections are cut after 2 MB from the server:
			// each ends in the middle of a response, after at least one whole
			// one, whatever the watch has passed on to the reader so far.
			p := proxied(t)
			p.CutAfter(2<<20, 2<<20)
			c := newClient(t, etcdgw.WithEndpoints(p.Endpoint("http")), etcdgw.WithKeyPrefix(prefix),
				etcdgw.WithHealthCheck(time.Second, 1), etcdgw.WithWatchMultiplexing(mode.mux))
			ch := c.WatchDir(ctx, "b/", etcdgw.WithRev(first))
			require.True(t, next(t, ch).Created)
			var got []event
			prev := int64(0)
			for prev < last {
				r := next(t, ch)
				require.NoError(t, r.Err())
				assert.False(t, r.Created, "created once, not per reconnect")
				for _, ev := range r.Events {
					// A transaction's events share a revision; a later response
					// never goes back (the comparison with the history below
					// catches repeats).
					require.GreaterOrEqual(t, ev.Kv.ModRevision, prev)
					prev = ev.Kv.ModRevision
					got = append(got, event{ev.Type, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.ModRevision})
				}
			}
			if mode.mux {
				// The WebSocket is a connection of its own, not the one that
				// asked for /version first.
				assert.GreaterOrEqual(t, p.Tripped(), int64(1), "a connection cut mid catch-up")
			} else {
				assert.Equal(t, int64(2), p.Tripped(), "two connections cut mid catch-up")
			}
			assert.GreaterOrEqual(t, p.Accepted(), p.Tripped()+1, "it reconnected after each cut")
			assert.Len(t, got, txns+puts, "nothing skipped")
			assert.Equal(t, want, got, "every event once, in order, across cut connections")
		})
	}
}

// streamServer is a fake gateway whose /v3/watch answers are scripted: each
// connection gets the next script, a list of chunks, each written and flushed
// on its own.
type streamServer struct {
	*httptest.Server
	scripts [][]string
	calls   atomic.Int32
	bodies  chan string
}

func newStreamServer(t *testing.T, scripts ...[]string) *streamServer {
	s := &streamServer{scripts: scripts, bodies: make(chan string, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			// Like a proxy that does not pass WebSocket: the watches fall
			// back to a request each, which the scripts answer.
			http.Error(w, "no WebSocket here", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/version":
			io.WriteString(w, `{"etcdserver":"3.5.0","etcdcluster":"3.5.0"}`)
			return
		case "/health":
			io.WriteString(w, `{"health":"true"}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		select {
		case s.bodies <- string(b):
		default:
		}
		i := int(s.calls.Add(1)) - 1
		if i >= len(s.scripts) {
			<-r.Context().Done() // nothing more to say: hold the stream open
			return
		}
		w.WriteHeader(http.StatusOK)
		for _, chunk := range s.scripts[i] {
			io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

const (
	createdLine = `{"result":{"header":{"revision":"10"},"created":true}}` + "\n"
	eventLine11 = `{"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"aw==","mod_revision":"11","value":"MQ=="}}]}}` + "\n"
	eventLine12 = `{"result":{"header":{"revision":"12"},"events":[{"kv":{"key":"aw==","mod_revision":"12","value":"Mg=="}}]}}` + "\n"
)

func TestWatchStreamChunking(t *testing.T) {
	split := func(s string, n int) []string {
		var out []string
		for len(s) > n {
			out = append(out, s[:n])
			s = s[n:]
		}
		return append(out, s)
	}
	all := createdLine + eventLine11 + eventLine12
	for name, script := range map[string][]string{
		"many small chunks":  split(all, 7),
		"one chunk":          {all},
		"lone newlines":      {strings.TrimSuffix(createdLine, "\n"), "\n", strings.TrimSuffix(eventLine11, "\n"), "\n", "\n", eventLine12},
		"split at newlines":  {createdLine[:len(createdLine)-1], "\n" + eventLine11[:5], eventLine11[5:] + eventLine12},
		"blank lines around": {"\n", createdLine, "\n\n", eventLine11, " \n", eventLine12},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStreamServer(t, script)
			c := newClientOf(t, s.URL)
			ch := c.Watch(testCtx(t), "k")
			require.True(t, next(t, ch).Created)
			ev := nextEvents(t, ch)
			require.Len(t, ev, 1)
			assert.Equal(t, "1", string(ev[0].Kv.Value))
			ev = nextEvents(t, ch)
			assert.Equal(t, "2", string(ev[0].Kv.Value), "each message its own response, nothing merged")
		})
	}
}

func TestWatchTruncatedStreamResumes(t *testing.T) {
	// The first stream dies in the middle of a message; the watch reconnects
	// from the revision after the last event it delivered, and etcd sends that
	// event again in full.
	s := newStreamServer(t,
		[]string{createdLine, eventLine11, eventLine12[:30]},
		[]string{createdLine, eventLine12},
	)
	c := newClientOf(t, s.URL)
	ch := c.Watch(testCtx(t), "k", etcdgw.WithRev(5))
	require.True(t, next(t, ch).Created)
	assert.Equal(t, "1", string(nextEvents(t, ch)[0].Kv.Value))
	assert.Equal(t, "2", string(nextEvents(t, ch)[0].Kv.Value))
	<-s.bodies
	second := <-s.bodies
	assert.Contains(t, second, `"start_revision":"12"`, "resumed after the last delivered event")
}

func TestWatchStreamErrorShapes(t *testing.T) {
	v1 := `{"error":{"grpc_code":14,"http_code":503,"message":"error reading from server: EOF","http_status":"Service Unavailable"}}`
	v2 := `{"error":{"code":14,"message":"error reading from server: EOF"}}` + "\n"
	for name, end := range map[string]string{"v1 (3.4, 3.5)": v1, "v2 (3.6+)": v2} {
		t.Run(name, func(t *testing.T) {
			s := newStreamServer(t,
				[]string{createdLine, eventLine11, end},
				[]string{createdLine, eventLine11, eventLine12},
			)
			c := newClientOf(t, s.URL)
			ch := c.Watch(testCtx(t), "k", etcdgw.WithRev(11))
			require.True(t, next(t, ch).Created)
			assert.Equal(t, "1", string(nextEvents(t, ch)[0].Kv.Value))
			// Unavailable ends the stream, not the watch; the repeat of 11 is dropped.
			ev := nextEvents(t, ch)
			assert.Equal(t, "2", string(ev[0].Kv.Value))
			assert.Equal(t, int64(12), ev[0].Kv.ModRevision)
		})
	}
	// A terminal error that another attempt cannot fix ends the watch, typed.
	denied := `{"error":{"code":7,"message":"etcdserver: permission denied"}}` + "\n"
	s := newStreamServer(t, []string{createdLine, denied})
	c := newClientOf(t, s.URL)
	ch := c.Watch(testCtx(t), "k")
	require.True(t, next(t, ch).Created)
	r := next(t, ch)
	assert.True(t, r.Canceled)
	assert.ErrorIs(t, r.Err(), etcdgw.ErrPermissionDenied)
	closed(t, ch, time.Second)
}

func TestWatchGarbageEndsWithMalformed(t *testing.T) {
	for name, line := range map[string]string{
		"not json":        "<html>proxy error</html>\n",
		"neither":         `{"resultat":{}}` + "\n",
		"bad base64":      `{"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"!!!!","mod_revision":"11"}}]}}` + "\n",
		"wrong type":      `{"result":{"events":{"kv":1}}}` + "\n",
		"bad event type":  `{"result":{"events":[{"type":"RENAME","kv":{"key":"aw=="}}]}}` + "\n",
		"number too long": `{"result":{"header":{"revision":"99999999999999999999999"}}}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := newStreamServer(t, []string{createdLine, line})
			c := newClientOf(t, s.URL)
			ch := c.Watch(testCtx(t), "k")
			require.True(t, next(t, ch).Created)
			r := next(t, ch)
			assert.True(t, r.Canceled)
			assert.ErrorIs(t, r.Err(), etcdgw.ErrMalformedResponse)
			assert.Empty(t, r.Events, "no half-decoded value")
			closed(t, ch, time.Second)
		})
	}
}

func TestWatchLineOverLimit(t *testing.T) {
	big := `{"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"aw==","mod_revision":"11","value":"` +
		strings.Repeat("QUFB", 2000) + `"}}]}}` + "\n"
	s := newStreamServer(t, []string{createdLine, big})
	c := newClient(t, etcdgw.WithEndpoints(s.URL), etcdgw.WithMaxResponseBytes(4096))
	ch := c.Watch(testCtx(t), "k")
	require.True(t, next(t, ch).Created)
	r := next(t, ch)
	require.ErrorIs(t, r.Err(), etcdgw.ErrResponseTooLarge, "the client's own limit, not a bad answer")
	assert.NotErrorIs(t, r.Err(), etcdgw.ErrMalformedResponse)
	assert.Contains(t, r.Err().Error(), "WithFragment")
	closed(t, ch, time.Second)
	assert.Equal(t, int32(1), s.calls.Load(), "never resumed")
}

func TestWatchFragmentsJoined(t *testing.T) {
	frag1 := `{"result":{"header":{"revision":"13"},"fragment":true,"events":[{"kv":{"key":"YQ==","mod_revision":"11"}},{"kv":{"key":"Yg==","mod_revision":"12"}}]}}` + "\n"
	frag2 := `{"result":{"header":{"revision":"13"},"events":[{"type":"DELETE","kv":{"key":"Yw==","mod_revision":"13"}}]}}` + "\n"
	s := newStreamServer(t, []string{createdLine, frag1, frag2})
	c := newClientOf(t, s.URL)
	ch := c.Watch(testCtx(t), "", etcdgw.WithPrefix(), etcdgw.WithFragment(), etcdgw.WithRev(11))
	require.True(t, next(t, ch).Created)
	ev := nextEvents(t, ch)
	require.Len(t, ev, 3, "fragments joined into one response")
	assert.Equal(t, []string{"a", "b", "c"}, []string{string(ev[0].Kv.Key), string(ev[1].Kv.Key), string(ev[2].Kv.Key)})
	assert.Equal(t, mvccpb.DELETE, ev[2].Type)
	body := <-s.bodies
	assert.Contains(t, body, `"fragment":true`)
}

func TestWatchCreateFailureIsTyped(t *testing.T) {
	failed := `{"result":{"header":{"revision":"10"},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}` + "\n"
	s := newStreamServer(t, []string{failed})
	c := newClientOf(t, s.URL)
	r := next(t, c.Watch(testCtx(t), "k"))
	assert.True(t, r.Created && r.Canceled)
	assert.ErrorIs(t, r.Err(), etcdgw.ErrPermissionDenied)
	var e *etcdgw.Error
	require.True(t, errors.As(r.Err(), &e))
	assert.Equal(t, 7, e.Code)
	assert.Contains(t, r.CancelReason, "permission denied")
}

func TestWatchWithContextDeadlineEndsQuietly(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ch := c.Watch(ctx, "k")
	require.True(t, next(t, ch).Created)
	start := time.Now()
	closed(t, ch, 2*time.Second)
	assert.Less(t, time.Since(start), time.Second, "WithTimeout does not apply to a watch; its ctx does")
}
