package etcdgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Client is an etcd v3 client that speaks the HTTP/JSON gateway. It is safe for
// concurrent use and meant to be shared: create one per cluster, keep it for the
// life of the program, and Close it at the end. Its connections are pooled and,
// over https, multiplexed with HTTP/2.
type Client struct {
	cfg        config
	ring       *endpoint.Ring
	conns      *endpoint.Conns
	base       *http.Transport   // the client's own transport
	transport  http.RoundTripper // base, wrapped by WithTransport
	serializer Serializer
	keyPrefix  []byte
	maxBody    int

	// Shared with the client's namespaces (Namespace).
	headers     *atomic.Pointer[requestHeaders] // rebuilt when the auth token changes
	prefix      *atomic.Pointer[string]         // the API prefix once known
	prefixFetch *flight[string]
	serverVer   *atomic.Pointer[string]

	parent *Client          // of a namespace: the client it is a view of
	views  map[*Client]bool // namespaces not closed yet, closed with the client

	auth *authState

	ctx    context.Context // ends at Close: watches and keepalives stop
	cancel context.CancelFunc
	closed atomic.Bool
	life   sync.Mutex           // orders spawn and Close
	wg     sync.WaitGroup       // watches, keepalives and other background work
	bufs   sync.Pool            // *[]byte bodies of answers
	spare  atomic.Pointer[body] // one large body buffer that outlives GC cycles

	muxMu     sync.Mutex
	muxes     map[*endpoint.Endpoint]*watchMux // duplex watch streams, over HTTP/2
	evictions atomic.Int64                     // slow watches dropped from a stream and resubscribed

	leaseMu       sync.Mutex
	leaseStreams  map[*endpoint.Endpoint]*leaseStream // duplex keepalive streams, over HTTP/2
	leaseUnshared map[*endpoint.Endpoint]time.Time    // endpoints whose stream never answered, until when

	coal *coalescer // WithReadCoalescing

	pageHook func() // tests: called after each ReadDir page
}

// requestHeaders are built once and copied into each request.
type requestHeaders struct {
	plain  http.Header // for calls that do not require a leader
	leader http.Header // with Grpc-Metadata-Hasleader: true
	token  string      // the auth token these carry, if any
}

// New returns a client configured by opts. It validates every option and
// fails on a bad one, but performs no I/O: the first call connects, and detects
// the API prefix unless WithAPIPrefix was given.
func New(opts ...Option) (*Client, error) {
	cfg := config{
		timeout:          DefaultTimeout,
		serializer:       JSON,
		proxy:            http.ProxyFromEnvironment,
		failTimeout:      DefaultFailTimeout,
		maxFails:         1,
		maxResponseBytes: DefaultMaxResponseBytes,
		watchBuffer:      2,
		dialTimeout:      DefaultDialTimeout,
		streamIdle:       DefaultStreamKeepaliveInterval,
		streamTimeout:    DefaultStreamKeepaliveTimeout,
		readCoalescing:   true,
	}
	for _, o := range opts {
		if o == nil {
			return nil, invalidOption("nil Option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.endpoints) == 0 {
		cfg.endpoints = []string{DefaultEndpoint}
	}
	eps := make([]*endpoint.Endpoint, 0, len(cfg.endpoints))
	anyTLS := false
	seen := map[string]bool{}
	for _, raw := range cfg.endpoints {
		u, host, isTLS, err := parseEndpoint(raw)
		if err != nil {
			return nil, err
		}
		if seen[u] {
			return nil, invalidOption("endpoint %q given twice", raw)
		}
		seen[u] = true
		anyTLS = anyTLS || isTLS
		eps = append(eps, &endpoint.Endpoint{URL: u, Host: host, TLS: isTLS})
	}
	if err := cfg.tls.check(anyTLS); err != nil {
		return nil, err
	}

	c := &Client{
		cfg:        cfg,
		serializer: cfg.serializer,
		keyPrefix:  []byte(cfg.keyPrefix),
		maxBody:    cfg.maxResponseBytes,

		headers:     new(atomic.Pointer[requestHeaders]),
		prefix:      new(atomic.Pointer[string]),
		prefixFetch: new(flight[string]),
		serverVer:   new(atomic.Pointer[string]),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.conns = endpoint.NewConns(endpoint.Dialer(cfg.unixSocket, cfg.dialTimeout))
	c.base = &http.Transport{
		Proxy:                 cfg.proxy,
		DialContext:           c.conns.Dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.dialTimeout,
		DisableCompression:    true,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       16 << 10,
		ResponseHeaderTimeout: 0, // watches wait for events; unary attempts have their own bound
		HTTP2: &http.HTTP2Config{
			// Pings detect a dead connection under a watch that has nothing
			// to say: WithStreamKeepalive's bound.
			SendPingTimeout: cfg.streamIdle,
			PingTimeout:     cfg.streamTimeout,
		},
	}
	if anyTLS {
		c.base.TLSClientConfig = cfg.tls.build()
	}
	if cfg.unixSocket != "" {
		c.base.Proxy = nil // the socket is the way to every endpoint
	}
	c.transport = c.base
	if cfg.wrap != nil {
		if c.transport = cfg.wrap(c.base); c.transport == nil {
			return nil, invalidOption("WithTransport: the wrapper returned nil")
		}
	}
	if cfg.apiPrefix != "" {
		p := cfg.apiPrefix
		c.prefix.Store(&p)
	}
	if cfg.auth {
		c.auth = &authState{}
	}
	if cfg.readCoalescing {
		c.coal = newCoalescer(len(eps))
	}
	c.setHeaders("")
	c.ring = endpoint.NewRing(eps, endpoint.Config{
		FailTimeout:  cfg.failTimeout,
		MaxFails:     cfg.maxFails,
		Probe:        c.probe,
		AllDownProbe: time.Second,
		OnHealth: func(ep *endpoint.Endpoint, healthy bool) {
			c.endpointHealth(ep.URL, healthy, ep.LastError())
		},
	})
	return c, nil
}

// setHeaders rebuilds the shared request headers around an auth token.
func (c *Client) setHeaders(token string) {
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range c.cfg.headers {
		h[k] = v
	}
	if token != "" {
		h["Authorization"] = []string{token}
	}
	if c.cfg.requireLeader {
		h["Grpc-Metadata-Hasleader"] = []string{"true"}
	}
	leader := h.Clone()
	leader["Grpc-Metadata-Hasleader"] = []string{"true"}
	c.headers.Store(&requestHeaders{plain: h, leader: leader, token: token})
}

// Close ends every watch and KeepAlive of the client (their channels close),
// fails calls in flight with ErrClosed, and closes every connection. It waits
// for the client's goroutines to end. Calling it again does nothing. It
// closes the client's namespaces too; the Close of a namespace ends only its
// own watches and keepalives, and its calls.
func (c *Client) Close() error {
	c.life.Lock()
	if c.closed.Swap(true) {
		c.life.Unlock()
		return nil
	}
	views := c.views
	c.views = nil
	c.life.Unlock()
	c.cancel()
	for v := range views {
		v.Close()
	}
	if c.parent != nil {
		// A namespace: its own watches and keepalives end, the
		// connections are its parent's.
		c.wg.Wait()
		c.parent.forget(c)
		return nil
	}
	c.conns.CloseAll()
	c.wg.Wait()
	c.ring.Close()
	c.base.CloseIdleConnections()
	c.conns.CloseAll()
	c.spare.Store(nil)
	return nil
}

// spawn runs f in a goroutine that Close waits for; false if the client is
// closed.
func (c *Client) spawn(f func()) bool {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// VersionResponse is the answer of GET /version.
type VersionResponse struct {
	Server  string // etcdserver: the member's version, such as "3.7.3"
	Cluster string // etcdcluster: the cluster version, or "not_decided"
	Storage string // storage: the storage version (etcd 3.6 and later)
}

// Version returns the versions of the member that answers.
func (c *Client) Version(ctx context.Context) (*VersionResponse, error) {
	var v wire.VersionResponse
	err := c.unary(ctx, &rpc{method: http.MethodGet, path: wire.PathVersion, rootPath: true, idempotent: true, noAuth: true},
		func(body []byte, ep *endpoint.Endpoint) error {
			if err := wire.DecodeVersion(body, &v); err != nil {
				return err
			}
			if v.Server != "" {
				ep.SetVersion(v.Server)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	if v.Server == "" {
		// Something answers /version that is not etcd: a web server, a proxy.
		return nil, fmt.Errorf("%w: GET /version: the answer has no etcdserver version: is this etcd's client URL?", ErrMalformedResponse)
	}
	c.learnVersion(v.Server)
	return &VersionResponse{Server: v.Server, Cluster: v.Cluster, Storage: v.Storage}, nil
}

// learnVersion records the server version and the API prefix it implies.
func (c *Client) learnVersion(server string) {
	if server == "" {
		return
	}
	c.serverVer.Store(&server)
	if c.prefix.Load() == nil {
		p := prefixFor(server)
		c.prefix.CompareAndSwap(nil, &p)
	}
}

// emptyReplies reports whether ep's gateway answers errors with an empty
// reply, as etcd 3.4.23 as released does (its gateway library could not
// marshal errors). Only a 3.4.23 server is suspected, and it is asked once with
// a request that must fail; a 3.4.23 built otherwise (Debian's) answers it
// properly, and its closed connections stay failures.
func (c *Client) emptyReplies(ctx context.Context, ep *endpoint.Endpoint, urlPath string) bool {
	if v := c.serverVer.Load(); v == nil || *v != "3.4.23" {
		return false
	}
	if known := ep.EmptyErrors.Load(); known != 0 {
		return known > 0
	}
	prefix, _, _ := strings.Cut(urlPath[1:], "/")
	r := &rpc{path: "/" + prefix + wire.PathRange, rootPath: true, body: []byte("{}"), idempotent: true}
	b, status, err := c.send(ctx, ep, r.path, r, c.headers.Load())
	switch {
	case err != nil && errors.Is(err, io.EOF):
		ep.EmptyErrors.Store(1)
		return true
	case err == nil:
		c.putBuf(b)
		if status == 400 {
			ep.EmptyErrors.Store(-1)
		}
	}
	return false
}

// prefixFor maps etcdserver's version to the gateway prefix it serves:
// 3.2 and older /v3alpha, 3.3 /v3beta, 3.4 and later /v3.
func prefixFor(server string) string {
	major, rest, _ := strings.Cut(server, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || ma != 3 {
		return "/v3"
	}
	switch {
	case mi <= 2:
		return "/v3alpha"
	case mi == 3:
		return "/v3beta"
	}
	return "/v3"
}

// apiPrefix returns the gateway prefix, detecting it on first use: concurrent
// first callers share one GET /version.
func (c *Client) apiPrefix(ctx context.Context) (string, error) {
	if p := c.prefix.Load(); p != nil {
		return *p, nil
	}
	return c.prefixFetch.do(ctx, func(ctx context.Context) (string, error) {
		if p := c.prefix.Load(); p != nil {
			return *p, nil
		}
		v, err := c.Version(ctx)
		if err != nil {
			return "", &multiError{msg: "detecting the API prefix", errs: []error{err}}
		}
		p := prefixFor(v.Server)
		c.log(ctx, slog.LevelInfo, "etcdgw: API prefix detected", slog.String("prefix", p), slog.String("server_version", v.Server))
		return p, nil
	})
}

// legacyPath is path under the API prefix p: etcd 3.3 and older serve the lease
// calls other than grant and keepalive only under /kv/lease/.
func legacyPath(p, path string) string {
	if p != "/v3" {
		switch path {
		case wire.PathLeaseRevoke, wire.PathLeaseTTL, wire.PathLeaseLeases:
			return "/kv" + path
		}
	}
	return path
}

// rpc describes one unary request.
type rpc struct {
	method     string // POST unless set
	path       string // under the API prefix, or from the root with rootPath
	rootPath   bool
	body       []byte
	idempotent bool // may be retried on another endpoint after it may have reached etcd
	noAuth     bool
	leader     bool // require a leader for this call
	// ep, when set, pins the call to this endpoint: it is neither sent to nor
	// retried on another (the later pages of a serializable ReadDir).
	ep *endpoint.Endpoint

	// Administration (maintenance.go).
	// member: a per-member call (Status, HashKV, ...), pinned to ep: it
	// changes no endpoint's health, and its one attempt is bounded by ctx
	// (or WithAttemptTimeout) alone.
	member bool
	// noTimeout: ctx alone bounds the call: no WithTimeout default and no
	// attempt timeout (Defragment, Snapshot: minutes on a big database).
	noTimeout bool
}

// unary sends r and hands the body of the 2xx answer to decode. It picks a
// healthy endpoint, authenticates, bounds each attempt, and retries as decide
// rules; error answers become *Error.
func (c *Client) unary(ctx context.Context, r *rpc, decode func(body []byte, ep *endpoint.Endpoint) error) error {
	if c.cfg.observer == nil {
		return c.attempts(ctx, r, decode, nil)
	}
	ctx, ob := c.startCall(ctx, rpcName(r.path))
	err := c.attempts(ctx, r, decode, ob)
	c.endCall(ctx, ob, err)
	return err
}

// attempts is unary, recording each attempt in ob when it is not nil.
func (c *Client) attempts(ctx context.Context, r *rpc, decode func(body []byte, ep *endpoint.Endpoint) error, ob *callObs) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok && c.cfg.timeout > 0 && !r.noTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	urlPath := r.path
	if !r.rootPath {
		p, err := c.apiPrefix(ctx)
		if err != nil {
			return err
		}
		urlPath = p + legacyPath(p, r.path)
	}
	if c.auth != nil && !r.noAuth {
		if _, err := c.token(ctx); err != nil {
			return err
		}
	}
	var triedBuf [4]*endpoint.Endpoint
	tried := triedBuf[:0]
	var lastErr error
	authRetried := false
	for {
		ep := r.ep
		if ep == nil {
			ep = c.ring.Pick(tried)
			if ep == nil {
				ep = c.ring.Recover(ctx, tried)
			}
		} else if contains(tried, ep) {
			ep = nil
		}
		if ep == nil {
			return c.noEndpoint(ctx, r, lastErr)
		}
		hdrs := c.headers.Load()
		untried := len(c.ring.Endpoints()) - len(tried)
		if r.ep != nil {
			// A pinned call is not retried here, but its caller (ReadDir)
			// starts over elsewhere: leave it half of the deadline.
			untried = 2
		}
		if r.member {
			untried = 1 // administration: no other member will be tried
		}
		timeout := c.attemptTimeout(ctx, untried)
		if r.noTimeout {
			timeout = 0
		}
		var began time.Time
		if ob != nil {
			began = time.Now()
		}
		ans := c.exchange(ctx, ep, urlPath, r, hdrs, timeout)
		if ob != nil {
			c.observeAttempt(ctx, ob, ep.URL, ans.status, ans.err, time.Since(began))
		}
		a := attempt{
			write:    !r.idempotent,
			sent:     ans.sent,
			answered: ans.err == nil,
			status:   ans.status,
			// An answer read whole stands, whatever happened to ctx since.
			ctxDone:  ans.err != nil && (ctx.Err() != nil || c.closed.Load()),
			timedOut: ans.timedOut,
			tooLarge: errors.Is(ans.err, ErrResponseTooLarge),
		}
		var e *Error
		if a.answered && ans.status/100 != 2 {
			st := wire.ParseErrorBody(ans.status, ans.body.b)
			c.putBuf(ans.body)
			e = newError(st, ep.URL)
			e.hint = statusHint(e)
			a.refused = refusedBeforeProposal(e)
			a.stopping = memberStopping(e)
		}
		if !a.answered && !a.ctxDone && !a.tooLarge && errors.Is(ans.err, errNoAnswer) {
			// The connection closed with no answer at all.
			if c.auth != nil && !r.noAuth && !authRetried {
				// Some gateways drop the connection on a token they refuse
				// (patroni#2552): fetch a new one, and retry a read once.
				authRetried = true
				if _, terr := c.refreshToken(ctx, hdrs.token); terr != nil {
					return terr
				}
				if r.idempotent {
					continue
				}
			}
			if c.emptyReplies(ctx, ep, urlPath) {
				return &Error{Code: wire.CodeUnknown, Endpoint: ep.URL,
					Message: "empty reply: etcd 3.4.23's gateway drops every error answer (etcd-io/etcd#15256); upgrade to 3.4.24 or later"}
			}
		}
		d := decide(a)
		var cause error = e
		if e == nil && ans.err != nil {
			cause = ans.err
			if !a.tooLarge && !a.ctxDone {
				cause = &transportError{endpoint: ep.URL, err: ans.err, hint: transportHint(ep.TLS, ep.Proto() == 0, ans.err)}
			}
		}
		if d.memberFail && !r.member {
			ep.SetLastError(cause)
		}
		switch {
		case r.member: // per-member administration: health untouched
		case d.memberFail:
			c.ring.Fail(ep)
		case a.answered && !a.ctxDone:
			c.ring.Succeed(ep)
		}
		switch d.act {
		case actDone:
			err := decode(ans.body.b, ep)
			c.putBuf(ans.body)
			if err != nil {
				return malformed(ep.URL, err)
			}
			return nil
		case actNext:
			lastErr = cause
			tried = append(tried, ep)
			continue
		case actUnknown:
			return c.unknownOutcome(ctx, r, ep, cause)
		}
		// actFinal
		switch {
		case a.ctxDone:
			return c.ctxEnded(ctx, r, cause)
		case e != nil && c.auth != nil && !r.noAuth && !authRetried && e.needsNewToken():
			authRetried = true
			if _, err := c.refreshToken(ctx, hdrs.token); err != nil {
				return err
			}
			continue
		case a.tooLarge:
			return &multiError{msg: rpcName(r.path) + " on " + ep.URL, errs: []error{ans.err}}
		}
		return e
	}
}

// rpcNames are the gateway RPCs by path, for messages and observers.
var rpcNames = map[string]string{
	wire.PathRange: "Range", wire.PathPut: "Put", wire.PathDeleteRange: "DeleteRange", wire.PathTxn: "Txn",
	wire.PathCompaction: "Compact", wire.PathWatch: "Watch", wire.PathLeaseGrant: "LeaseGrant",
	wire.PathLeaseRevoke: "LeaseRevoke", wire.PathLeaseKeepAlive: "LeaseKeepAlive",
	wire.PathLeaseTTL: "LeaseTimeToLive", wire.PathLeaseLeases: "LeaseLeases",
	wire.PathAuthenticate: "Authenticate", wire.PathVersion: "Version", wire.PathHealth: "Health",
}

// rpcName is the gateway RPC of a path: "/kv/range" is "Range".
func rpcName(path string) string {
	if n, ok := rpcNames[path]; ok {
		return n
	}
	return path
}

// unknownOutcome is the error of a write that may have been applied.
func (c *Client) unknownOutcome(ctx context.Context, r *rpc, ep *endpoint.Endpoint, cause error) error {
	errs := []error{ErrOutcomeUnknown}
	if c.closed.Load() {
		errs = append(errs, ErrClosed, context.Canceled)
	} else if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if cause == nil {
		cause = ctx.Err()
	}
	return &multiError{msg: fmt.Sprintf("%s on %s may have been applied", rpcName(r.path), ep.URL), errs: append(errs, cause)}
}

// ctxEnded is the error of a call that its ctx or Close ended before an
// answer: it matches the context's error, and for a deadline ErrUnavailable
// too (no member answered in time).
func (c *Client) ctxEnded(ctx context.Context, r *rpc, cause error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	err := ctx.Err()
	if cause == nil || isContextError(cause) {
		cause = err
	}
	errs := []error{err}
	if errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, ErrUnavailable)
	}
	return &multiError{msg: rpcName(r.path), errs: append(errs, cause)}
}

// noEndpoint is the error of a call that found no member to try: every
// endpoint is unhealthy, or each was tried. It wraps the last failure seen,
// of this call or of an earlier one.
func (c *Client) noEndpoint(ctx context.Context, r *rpc, lastErr error) error {
	if ctx.Err() != nil || c.closed.Load() {
		return c.ctxEnded(ctx, r, lastErr)
	}
	if lastErr != nil {
		if errors.Is(lastErr, ErrUnavailable) {
			return &multiError{msg: rpcName(r.path), errs: []error{lastErr}}
		}
		return &multiError{msg: rpcName(r.path) + ": no member could serve it", errs: []error{ErrUnavailable, lastErr}}
	}
	for _, ep := range c.ring.Endpoints() {
		if err := ep.LastError(); err != nil {
			lastErr = err
		}
	}
	if lastErr == nil {
		return ErrNoHealthyEndpoint
	}
	return &multiError{msg: "no healthy endpoint; last failure", errs: []error{ErrNoHealthyEndpoint, ErrUnavailable, lastErr}}
}

// body is a pooled buffer holding an answer.
type body struct{ b []byte }

// spareMin is the smallest buffer kept in Client.spare. Answers of unknown
// length (chunked: the gateway sets no Content-Length above about 2 KB) and
// large ones take the spare first.
const spareMin = 64 << 10

func (c *Client) getBuf(n int) *body {
	if n == 0 || n >= spareMin {
		// sync.Pool drops its buffers at every other GC, and the GC runs
		// often while large answers are read: the pages of a ReadDir would
		// otherwise regrow a buffer of up to pageMaxBytes for each page.
		if v := c.spare.Swap(nil); v != nil {
			if cap(v.b) >= n {
				v.b = v.b[:n]
				return v
			}
			c.putBuf(v)
		}
	}
	if v, ok := c.bufs.Get().(*body); ok {
		if cap(v.b) >= n {
			v.b = v.b[:n]
			return v
		}
	}
	return &body{b: make([]byte, n, max(n, 4096))}
}

func (c *Client) putBuf(b *body) {
	if cap(b.b) >= spareMin && cap(b.b) <= 4<<20 && !c.closed.Load() && c.spare.CompareAndSwap(nil, b) {
		return
	}
	if cap(b.b) <= 4<<20 {
		c.bufs.Put(b)
	}
}

// answer is the result of one attempt: an HTTP answer read whole, or why none
// came.
type answer struct {
	body     *body
	status   int
	err      error // no answer: transport error, attempt timeout, too large
	sent     bool  // the request may have reached etcd
	timedOut bool  // the attempt timeout ended it
}

// exchange performs one attempt of r on ep: the request, bounded by timeout
// until the answer's headers (0: by ctx alone), and the whole answer.
func (c *Client) exchange(ctx context.Context, ep *endpoint.Endpoint, urlPath string, r *rpc, h *requestHeaders, timeout time.Duration) answer {
	actx := ctx
	var timer *time.Timer
	if timeout > 0 {
		var cancel context.CancelCauseFunc
		actx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		timer = time.AfterFunc(timeout, func() { cancel(errAttemptTimeout) })
	}
	var wrote atomic.Bool
	if !r.idempotent {
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			WroteHeaders: func() { wrote.Store(true) },
		})
	}
	req, err := c.newRequest(actx, ep, urlPath, r, h)
	if err != nil {
		if timer != nil {
			timer.Stop()
		}
		return answer{err: err}
	}
	resp, err := c.transport.RoundTrip(req)
	if timer != nil {
		timer.Stop()
	}
	timedOut := context.Cause(actx) == errAttemptTimeout
	// An idempotent call may always have reached etcd; a write has not if its
	// headers were never written.
	sent := r.idempotent || wrote.Load()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("%w of %v", errAttemptTimeout, timeout)
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: %w", errNoAnswer, err)
		}
		return answer{err: err, sent: sent, timedOut: timedOut}
	}
	ep.SetProto(resp.ProtoMajor)
	b, err := c.readAll(resp)
	if err != nil {
		return answer{err: err, sent: true}
	}
	return answer{body: b, status: resp.StatusCode, sent: true}
}

// send performs one exchange with no attempt bound, for the client's own
// checks; err is a transport error.
func (c *Client) send(ctx context.Context, ep *endpoint.Endpoint, urlPath string, r *rpc, h *requestHeaders) (*body, int, error) {
	ans := c.exchange(ctx, ep, urlPath, r, h, 0)
	return ans.body, ans.status, ans.err
}

// newRequest builds the request of r to urlPath on ep.
func (c *Client) newRequest(ctx context.Context, ep *endpoint.Endpoint, urlPath string, r *rpc, h *requestHeaders) (*http.Request, error) {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, ep.URL+urlPath, rd)
	if err != nil {
		return nil, err
	}
	req.Host = ep.Host
	src := h.plain
	if r.leader {
		src = h.leader
	}
	// Each request has a map of its own, which a wrapping RoundTripper may
	// change; the values are shared, capped so that an Add copies them.
	hdr := make(http.Header, len(src))
	for k, v := range src {
		hdr[k] = v[:len(v):len(v)]
	}
	if r.noAuth {
		delete(hdr, "Authorization")
	}
	req.Header = hdr
	return req, nil
}

// readAll reads an answer's body into a pooled buffer, refusing more than the
// client's limit.
func (c *Client) readAll(resp *http.Response) (*body, error) {
	defer resp.Body.Close()
	if resp.ContentLength > int64(c.maxBody) {
		return nil, fmt.Errorf("%w: answer of %d bytes is over WithMaxResponseBytes(%d)", ErrResponseTooLarge, resp.ContentLength, c.maxBody)
	}
	if resp.ContentLength >= 0 {
		b := c.getBuf(int(resp.ContentLength))
		if _, err := io.ReadFull(resp.Body, b.b); err != nil {
			c.putBuf(b)
			return nil, err
		}
		return b, nil
	}
	b := c.getBuf(0)
	for {
		if len(b.b) == cap(b.b) {
			b.b = append(b.b, 0)[:len(b.b)]
		}
		n, err := resp.Body.Read(b.b[len(b.b):cap(b.b)])
		b.b = b.b[:len(b.b)+n]
		if len(b.b) > c.maxBody {
			c.putBuf(b)
			return nil, fmt.Errorf("%w: answer over WithMaxResponseBytes(%d)", ErrResponseTooLarge, c.maxBody)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			c.putBuf(b)
			return nil, err
		}
	}
}

// probeTimeout bounds a /health probe that its caller does not bound
// sooner: etcd's /health reads through raft, and a loaded member can take
// seconds to answer it (2s proved too short under the race detector).
const probeTimeout = 5 * time.Second

// probe asks an endpoint's /health whether it can serve.
func (c *Client) probe(ctx context.Context, ep *endpoint.Endpoint) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, ep, wire.PathHealth, &rpc{method: http.MethodGet, path: wire.PathHealth, rootPath: true, noAuth: true}, c.headers.Load())
	if err != nil {
		return false
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return false
	}
	ep.SetProto(resp.ProtoMajor)
	b, err := c.readAll(resp)
	if err != nil {
		return false
	}
	defer c.putBuf(b)
	if resp.StatusCode != http.StatusOK {
		return false
	}
	var h wire.HealthResponse
	if wire.DecodeHealth(b.b, &h) != nil || h.Health != "true" {
		return false
	}
	ep.HealthyAt.Store(time.Now().UnixNano())
	return true
}

// flight shares one run of a function among concurrent callers: the first
// caller runs it, the others wait for its result. A result that is the
// runner's own context error is not shared; the waiters try again.
type flight[T any] struct {
	mu  sync.Mutex
	cur *flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (f *flight[T]) do(ctx context.Context, fn func(ctx context.Context) (T, error)) (T, error) {
	for {
		f.mu.Lock()
		if call := f.cur; call != nil {
			f.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				var zero T
				return zero, ctx.Err()
			}
			if isContextError(call.err) && ctx.Err() == nil {
				continue
			}
			return call.val, call.err
		}
		call := &flightCall[T]{done: make(chan struct{})}
		f.cur = call
		f.mu.Unlock()
		call.val, call.err = fn(ctx)
		f.mu.Lock()
		f.cur = nil
		f.mu.Unlock()
		close(call.done)
		return call.val, call.err
	}
}

func contains(list []*endpoint.Endpoint, e *endpoint.Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
