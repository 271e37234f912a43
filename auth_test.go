package etcdgw_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// Users of the auth tests: rw may write under app/, ro may only read it.
const (
	rootPassword = "root-Secret-1"
	rwPassword   = "rw-Secret-2"
	roPassword   = "ro-Secret-3"
	pathAuth     = "/v3/auth/authenticate"
)

// TestAuth runs the tests of token auth against one auth-enabled etcd; the
// restart comes last.
func TestAuth(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "auth"})
	require.NoError(t, etcdtest.EnableAuth(s.Endpoint(), nil, rootPassword,
		etcdtest.User{Name: "rw", Password: rwPassword, WritePrefix: []string{"app/"}},
		etcdtest.User{Name: "ro", Password: roPassword, ReadPrefix: []string{"app/"}}))
	for _, tt := range []struct {
		name string
		f    func(*testing.T, *etcdtest.Server)
	}{
		{"OneAuthenticateForConcurrentCallers", testOneAuthenticate},
		{"WrongPassword", testWrongPassword},
		{"ReadOnlyUserWrites", testReadOnlyUserWrites},
		{"Watch", testAuthWatch},
		{"WatchWithoutPermission", testWatchWithoutPermission},
		{"ServerRestart", testAuthServerRestart},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, s) })
	}
}

// authProxy is a recording proxy to s, closed when the test ends.
func authProxy(t *testing.T, s *etcdtest.Server) *etcdtest.RecordingProxy {
	t.Helper()
	p, err := etcdtest.NewRecordingProxy(s.Endpoint(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

func testOneAuthenticate(t *testing.T, s *etcdtest.Server) {
	p := authProxy(t, s)
	c := clientOf(t, p.Endpoint(), etcdgw.WithAuth("rw", rwPassword), etcdgw.WithReadCoalescing(false))
	ctx := testCtx(t)

	const callers = 16
	start := make(chan struct{})
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			_, errs[i] = c.Get(ctx, "app/k")
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "caller %d", i)
	}
	assert.Equal(t, 1, p.Count(pathAuth), "one authenticate for all callers")
	assert.Equal(t, callers, p.Count("/v3/kv/range"))

	var token string
	for _, r := range p.Requests() {
		switch r.Path {
		case pathAuth:
			assert.Empty(t, r.Header.Values("Authorization"), "authenticate carries no token")
		case "/v3/kv/range":
			got := r.Header.Values("Authorization")
			require.Len(t, got, 1)
			assert.NotContains(t, got[0], " ", "the raw token, no scheme")
			if token == "" {
				token = got[0]
			}
			assert.Equal(t, token, got[0], "every caller uses the one token")
		}
	}
	assert.NotEmpty(t, token)
}

func testWrongPassword(t *testing.T, s *etcdtest.Server) {
	const secret = "Wrong-Passw0rd-XyZ"
	p := authProxy(t, s)
	c := clientOf(t, p.Endpoint(), etcdgw.WithAuth("rw", secret))
	ctx := testCtx(t)

	_, err := c.Get(ctx, "app/k")
	require.ErrorIs(t, err, etcdgw.ErrAuthFailed)
	assert.NotContains(t, err.Error(), secret)
	assert.Equal(t, 1, p.Count(pathAuth), "a refused password is not tried again and again")
	assert.Zero(t, p.Count("/v3/kv/range"), "nothing is sent without a token")

	_, err = c.Set(ctx, "app/k", "v")
	require.ErrorIs(t, err, etcdgw.ErrAuthFailed)
	assert.NotContains(t, err.Error(), secret)

	r := next(t, c.Watch(ctx, "app/k"))
	require.ErrorIs(t, r.Err(), etcdgw.ErrAuthFailed)
	assert.True(t, r.Canceled)
	assert.NotContains(t, r.Err().Error(), secret)
	assert.Zero(t, p.Count("/v3/watch"))
}

func testReadOnlyUserWrites(t *testing.T, s *etcdtest.Server) {
	ctx := testCtx(t)
	rw := clientOf(t, s.Endpoint(), etcdgw.WithAuth("rw", rwPassword))
	_, err := rw.Set(ctx, "app/ro", "by rw")
	require.NoError(t, err)

	ro := clientOf(t, s.Endpoint(), etcdgw.WithAuth("ro", roPassword))
	r, err := ro.Get(ctx, "app/ro")
	require.NoError(t, err, "ro may read app/")
	require.Len(t, r.Kvs, 1)

	_, err = ro.Set(ctx, "app/ro", "by ro")
	require.ErrorIs(t, err, etcdgw.ErrPermissionDenied)
	assert.NotErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
	_, err = ro.Delete(ctx, "app/ro")
	require.ErrorIs(t, err, etcdgw.ErrPermissionDenied)
	_, err = ro.Get(ctx, "other/k")
	require.ErrorIs(t, err, etcdgw.ErrPermissionDenied, "ro may not read outside app/")

	r, err = rw.Get(ctx, "app/ro")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	assert.Equal(t, `"by rw"`, string(r.Kvs[0].Value), "the refused writes changed nothing")
}

func testAuthWatch(t *testing.T, s *etcdtest.Server) {
	ctx := testCtx(t)
	c := clientOf(t, s.Endpoint(), etcdgw.WithAuth("rw", rwPassword))
	ch := c.WatchDir(ctx, "app/w/")
	require.True(t, next(t, ch).Created)
	put, err := c.Set(ctx, "app/w/1", "one")
	require.NoError(t, err)
	evs := nextEvents(t, ch)
	require.Len(t, evs, 1)
	assert.Equal(t, "app/w/1", string(evs[0].Kv.Key))
	assert.Equal(t, put.Header.Revision, evs[0].Kv.ModRevision)
}

func testWatchWithoutPermission(t *testing.T, s *etcdtest.Server) {
	ctx := testCtx(t)
	c := clientOf(t, s.Endpoint(), etcdgw.WithAuth("rw", rwPassword))
	ch := c.Watch(ctx, "other/k")
	r := next(t, ch)
	assert.True(t, r.Canceled)
	require.ErrorIs(t, r.Err(), etcdgw.ErrPermissionDenied)
	var e *etcdgw.Error
	assert.True(t, errors.As(r.Err(), &e), "a typed error: %T", r.Err())
	closed(t, ch, 10*time.Second)
}

func testAuthServerRestart(t *testing.T, s *etcdtest.Server) {
	p := authProxy(t, s)
	ctx := testCtx(t)
	c := clientOf(t, p.Endpoint(), etcdgw.WithAuth("rw", rwPassword))
	root := clientOf(t, s.Endpoint(), etcdgw.WithAuth("root", rootPassword))

	start, err := c.Get(ctx, "app/r/")
	require.NoError(t, err)
	require.Equal(t, 1, p.Count(pathAuth))
	from := start.Header.Revision + 1
	ch := c.WatchDir(ctx, "app/r/", etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)

	put := func(from, to int) int64 {
		var last int64
		for i := from; i < to; i++ {
			r, err := root.Set(ctx, fmt.Sprintf("app/r/%03d", i), i)
			require.NoError(t, err)
			last = r.Header.Revision
		}
		return last
	}
	put(0, 20)
	require.NoError(t, s.Restart())
	put(20, 40) // the root client re-authenticates on its own

	// The next call meets the dead token, fetches one new token and
	// succeeds. The watch, broken by the restart, may have fetched it
	// first; either way it is fetched once. While the proxy's failure
	// during the restart keeps the only endpoint marked, a call may fail
	// fast, so that is retried.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = c.Get(ctx, "app/r/")
		if !errors.Is(err, etcdgw.ErrNoHealthyEndpoint) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the end of the marking
	}
	require.NoError(t, err)
	last := put(40, 60)
	got := collect(t, ch, last)
	assert.Equal(t, 2, p.Count(pathAuth), "one new token after the restart")
	assert.GreaterOrEqual(t, p.Count("/v3/watch"), 2, "the watch reconnected")

	// What the watch saw is what etcd holds.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hch := root.WatchDir(hctx, "app/r/", etcdgw.WithRev(from))
	require.True(t, next(t, hch).Created)
	want := collect(t, hch, last)
	require.Len(t, want, 60)
	assert.Equal(t, want, got, "every event once, in order, across the restart")
}

// fakeAuth is a gateway that hands out tokens tok1, tok2, ... and answers
// other calls with handle, which gets the request's token. It counts the
// requests per path.
type fakeAuth struct {
	mu     sync.Mutex
	counts map[string]int
	tokens atomic.Int32
}

func (f *fakeAuth) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[path]
}

func newFakeAuth(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, token string)) (*fakeAuth, *etcdgw.Client) {
	f := &fakeAuth{counts: map[string]int{}}
	c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.counts[r.URL.Path]++
		f.mu.Unlock()
		if r.URL.Path == pathAuth {
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, `{"header":{"revision":"1"},"token":"tok%d.%s"}`, f.tokens.Add(1), strings.Repeat("x", 8))
			return
		}
		handle(w, r, r.Header.Get("Authorization"))
	}, etcdgw.WithAuth("user", "Fake-Passw0rd"))
	return f, c
}

const okRange = `{"header":{"revision":"5"}}`

// firstToken reports whether token is the first one handed out.
func firstToken(token string) bool { return strings.HasPrefix(token, "tok1.") }

func TestAuthOldRevisionRetriedOnce(t *testing.T) {
	// The refusal comes before anything is applied: a write is retried too.
	for _, tt := range []struct {
		path string
		call func(context.Context, *etcdgw.Client) error
	}{
		{"/v3/kv/range", func(ctx context.Context, c *etcdgw.Client) error { _, err := c.Get(ctx, "k"); return err }},
		{"/v3/kv/put", func(ctx context.Context, c *etcdgw.Client) error { _, err := c.Set(ctx, "k", "v"); return err }},
	} {
		t.Run(tt.path, func(t *testing.T) {
			f, c := newFakeAuth(t, func(w http.ResponseWriter, r *http.Request, token string) {
				if firstToken(token) {
					answer(http.StatusBadRequest, `{"error":"etcdserver: revision of auth store is old","code":3,"message":"etcdserver: revision of auth store is old"}`)(w, r)
					return
				}
				answer(http.StatusOK, okRange)(w, r)
			})
			require.NoError(t, tt.call(testCtx(t), c))
			assert.Equal(t, 2, f.count(pathAuth), "a new token")
			assert.Equal(t, 2, f.count(tt.path), "refused with the old token, then retried once")
		})
	}
}

func TestAuthDroppedConnectionRetriedOnce(t *testing.T) {
	f, c := newFakeAuth(t, func(w http.ResponseWriter, r *http.Request, token string) {
		if firstToken(token) {
			hangUp(w, r)
			return
		}
		answer(http.StatusOK, okRange)(w, r)
	})
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 2, f.count(pathAuth), "a new token after the drop")
	assert.Equal(t, 2, f.count("/v3/kv/range"), "the read was retried once")
}

func TestAuthTokenThatKeepsFailing(t *testing.T) {
	t.Run("InvalidToken", func(t *testing.T) {
		f, c := newFakeAuth(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			answer(http.StatusUnauthorized, `{"error":"etcdserver: invalid auth token","code":16,"message":"etcdserver: invalid auth token"}`)(w, r)
		})
		_, err := c.Get(testCtx(t), "k")
		require.ErrorIs(t, err, etcdgw.ErrInvalidAuthToken)
		assert.Equal(t, 2, f.count(pathAuth))
		assert.Equal(t, 2, f.count("/v3/kv/range"), "one retry, not a loop")
	})
	t.Run("DroppedConnection", func(t *testing.T) {
		f, c := newFakeAuth(t, func(w http.ResponseWriter, r *http.Request, _ string) { hangUp(w, r) })
		_, err := c.Get(testCtx(t), "k")
		require.Error(t, err)
		assert.Equal(t, 2, f.count(pathAuth))
		assert.Equal(t, 2, f.count("/v3/kv/range"), "one retry, not a loop")
	})
	t.Run("Watch", func(t *testing.T) {
		f, c := newFakeAuth(t, func(w http.ResponseWriter, r *http.Request, _ string) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, `{"result":{"header":{"revision":"5"},"created":true,"canceled":true,"cancel_reason":"rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"}}`+"\n")
		})
		ch := c.Watch(testCtx(t), "k")
		r := next(t, ch)
		assert.True(t, r.Canceled)
		require.ErrorIs(t, r.Err(), etcdgw.ErrInvalidAuthToken)
		closed(t, ch, 10*time.Second)
		assert.Equal(t, 2, f.count(pathAuth))
		assert.Equal(t, 2, f.count("/v3/watch"), "one retry, not a loop")
	})
}

func TestAuthH2WatchesSurviveRestart(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "authtls", TLS: true})
	tlsCfg, err := s.Certs().ClientTLSConfig()
	require.NoError(t, err)
	require.NoError(t, etcdtest.EnableAuth(s.Endpoint(), tlsCfg, rootPassword,
		etcdtest.User{Name: "rw", Password: rwPassword, WritePrefix: []string{"app/"}}))
	c := caClient(t, s, etcdgw.WithAuth("rw", rwPassword))
	root := caClient(t, s, etcdgw.WithAuth("root", rootPassword))
	ctx := testCtx(t)

	start, err := root.Get(ctx, "app/")
	require.NoError(t, err)
	from := start.Header.Revision + 1
	const n = 6
	var chans []etcdgw.WatchChan
	for i := range n {
		ch := c.WatchDir(ctx, fmt.Sprintf("app/%d/", i), etcdgw.WithRev(from))
		require.True(t, next(t, ch).Created)
		chans = append(chans, ch)
	}
	streams, watches := etcdgw.WatchStreams(c)
	require.Equal(t, 1, streams, "the watches share one HTTP/2 stream")
	require.Equal(t, n, watches)
	restartUnderWatches(t, s, root, chans, func(i int) string { return fmt.Sprintf("app/%d/", i) })
	// A new watch after the restart works too.
	ch := c.Watch(ctx, "app/new")
	r := next(t, ch)
	require.NoError(t, r.Err())
	require.True(t, r.Created)
}

// tokenGateway is a fake gateway whose tokens die when told, as etcd's
// simple tokens do when it restarts or they expire. A watch stream checks
// the token it was opened with at each create_request, as etcd does.
type tokenGateway struct {
	srv *httptest.Server

	mu     sync.Mutex
	issued int
	valid  map[string]bool
	counts map[string]int
	hold   chan struct{} // when set, a create refused for its token waits for it to close
	ids    int64
}

func newTokenGateway(t *testing.T, h2 bool) *tokenGateway {
	g := &tokenGateway{valid: map[string]bool{}, counts: map[string]int{}}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	if h2 {
		g.srv.EnableHTTP2 = true
		g.srv.StartTLS()
	} else {
		g.srv.Start()
	}
	t.Cleanup(g.srv.Close)
	return g
}

// client returns a client of the gateway with auth, closed when the test ends.
func (g *tokenGateway) client(t *testing.T) *etcdgw.Client {
	opts := []etcdgw.Option{etcdgw.WithEndpoints(g.srv.URL), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithAuth("user", "Fake-Passw0rd")}
	if cert := g.srv.Certificate(); cert != nil {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		opts = append(opts, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	c, err := etcdgw.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func (g *tokenGateway) count(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[path]
}

// killTokens makes every token issued so far invalid.
func (g *tokenGateway) killTokens() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.valid)
}

func (g *tokenGateway) isValid(token string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.valid[token]
}

const invalidToken = `{"error":"etcdserver: invalid auth token","code":16,"message":"etcdserver: invalid auth token"}`

func (g *tokenGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.counts[r.URL.Path]++
	g.mu.Unlock()
	token := r.Header.Get("Authorization")
	switch r.URL.Path {
	case "/health":
		answer(http.StatusOK, `{"health":"true"}`)(w, r)
	case pathAuth:
		g.mu.Lock()
		g.issued++
		tok := fmt.Sprintf("tok%d", g.issued)
		g.valid[tok] = true
		g.mu.Unlock()
		answer(http.StatusOK, `{"header":{"revision":"1"},"token":"`+tok+`"}`)(w, r)
	case "/v3/kv/range":
		if g.isValid(token) {
			answer(http.StatusOK, okRange)(w, r)
		} else {
			answer(http.StatusUnauthorized, invalidToken)(w, r)
		}
	case "/v3/watch":
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		dec := json.NewDecoder(r.Body)
		for {
			var m struct {
				Create json.RawMessage `json:"create_request"`
			}
			if dec.Decode(&m) != nil {
				return
			}
			if m.Create == nil {
				continue
			}
			var line string
			if g.isValid(token) {
				g.mu.Lock()
				g.ids++
				line = fmt.Sprintf(`{"result":{"header":{"revision":"5"},"watch_id":"%d","created":true}}`, g.ids)
				g.mu.Unlock()
			} else {
				g.mu.Lock()
				hold := g.hold
				g.mu.Unlock()
				if hold != nil {
					select {
					case <-hold:
					case <-r.Context().Done():
						return
					}
				}
				line = `{"result":{"header":{"revision":"5"},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"}}`
			}
			io.WriteString(w, line+"\n")
			rc.Flush()
		}
	default:
		http.NotFound(w, r)
	}
}

// A watch refused for a token that a concurrent call has already replaced
// uses the replacement: it fetches no token of its own.
func TestAuthWatchRefusedForReplacedToken(t *testing.T) {
	g := newTokenGateway(t, false)
	c := g.client(t)
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 1, g.count(pathAuth))

	g.killTokens()
	hold := make(chan struct{})
	g.mu.Lock()
	g.hold = hold
	g.mu.Unlock()
	ch := c.Watch(ctx, "k")
	require.Eventually(t, func() bool { return g.count("/v3/watch") == 1 }, 10*time.Second, 5*time.Millisecond)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err, "the call fetches a new token")
	require.Equal(t, 2, g.count(pathAuth))

	close(hold) // the watch now hears that its token is dead
	r := next(t, ch)
	require.NoError(t, r.Err())
	require.True(t, r.Created)
	assert.Equal(t, 2, g.count(pathAuth), "the watch took the token the call fetched")
	assert.Equal(t, 2, g.count("/v3/watch"))
}

// Over HTTP/2 a new watch does not join a stream opened with a token that
// has been replaced: etcd would refuse it there, again and again.
func TestAuthH2WatchAvoidsStreamOfReplacedToken(t *testing.T) {
	g := newTokenGateway(t, true)
	c := g.client(t)
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 2, etcdgw.EndpointProto(c, g.srv.URL), "the fake speaks HTTP/2")

	w1 := c.Watch(ctx, "a")
	require.True(t, next(t, w1).Created)
	streams, _ := etcdgw.WatchStreams(c)
	require.Equal(t, 1, streams)

	g.killTokens()
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 2, g.count(pathAuth))

	w2 := c.Watch(ctx, "b")
	r := next(t, w2)
	require.NoError(t, r.Err(), "a new watch is not sent on the stream of the dead token")
	require.True(t, r.Created)
	assert.Equal(t, 2, g.count(pathAuth), "no token fetched for the watch")
}
