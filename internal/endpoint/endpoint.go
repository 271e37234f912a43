// Package endpoint keeps the client's endpoints: a ring that starts at a random
// member and hands out healthy endpoints round-robin, passive health marking
// (a failed call marks its endpoint unhealthy for a fail timeout), probes that
// bring endpoints back, and the dialers the transport uses.
package endpoint

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint is one member's client URL and its health.
type Endpoint struct {
	// URL is "http://host:port" or "https://host:port", without a trailing slash.
	URL string
	// Host is "host:port", as sent in the Host header.
	Host string
	// TLS reports an https endpoint.
	TLS bool

	mu             sync.Mutex
	fails          int       // consecutive failures since the last success
	unhealthyUntil time.Time // zero when healthy
	lastProbe      time.Time
	probeDone      chan struct{} // non-nil while a probe is in flight, closed when it ends

	proto   atomic.Int32 // HTTP major version of the last answer; 0 unknown
	lastErr atomic.Pointer[error]
	// HealthyAt is when a /health probe last found the endpoint healthy, in
	// Unix nanoseconds: the streams to it share that answer for a while.
	HealthyAt atomic.Int64
	shared    sharedProbe

	// EmptyErrors records whether the endpoint answers errors with an empty
	// reply (etcd 3.4.23's gateway): 1 yes, -1 no, 0 not known.
	EmptyErrors atomic.Int32

	version atomic.Pointer[string]
	vmu     sync.Mutex
	vfetch  *versionCall // the fetch of the version in flight
	vfailed time.Time    // when the last fetch found nothing
}

type versionCall struct {
	done chan struct{}
	v    string
}

// SetVersion records the member's etcd version, as its /version answered.
func (e *Endpoint) SetVersion(v string) { e.version.Store(&v) }

// Version is the member's etcd version, or "" if not known yet.
func (e *Endpoint) Version() string {
	if p := e.version.Load(); p != nil {
		return *p
	}
	return ""
}

// FetchVersion returns the member's version, running fetch to learn it when
// it is not known: concurrent callers share one fetch, and after a fetch that
// found nothing the others return "" for retryAfter instead of asking again.
func (e *Endpoint) FetchVersion(ctx context.Context, retryAfter time.Duration, fetch func() string) string {
	if v := e.Version(); v != "" {
		return v
	}
	e.vmu.Lock()
	if call := e.vfetch; call != nil {
		e.vmu.Unlock()
		select {
		case <-call.done:
			return call.v
		case <-ctx.Done():
			return ""
		}
	}
	if time.Since(e.vfailed) < retryAfter {
		e.vmu.Unlock()
		return ""
	}
	call := &versionCall{done: make(chan struct{})}
	e.vfetch = call
	e.vmu.Unlock()
	call.v = fetch()
	if call.v != "" {
		e.SetVersion(call.v)
	}
	e.vmu.Lock()
	e.vfetch = nil
	if call.v == "" {
		e.vfailed = time.Now()
	}
	e.vmu.Unlock()
	close(call.done)
	return call.v
}

// SetProto records the HTTP major version an answer came with.
func (e *Endpoint) SetProto(major int) { e.proto.Store(int32(major)) }

// Proto is the HTTP major version last seen from the endpoint, or 0 if unknown.
func (e *Endpoint) Proto() int { return int(e.proto.Load()) }

// SetLastError records why the endpoint last failed.
func (e *Endpoint) SetLastError(err error) { e.lastErr.Store(&err) }

// LastError is why the endpoint last failed, or nil.
func (e *Endpoint) LastError() error {
	if p := e.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// sharedProbe is the probe of an endpoint in flight for its quiet streams.
type sharedProbe struct {
	mu  sync.Mutex
	cur *probeCall
}

type probeCall struct {
	done chan struct{}
	ok   bool
}

// SharedProbe runs probe for e, unless a shared probe of e is already in
// flight: then it waits for that one's answer (false if ctx ends first), so
// that many streams to one member that go quiet at once probe it once.
func (e *Endpoint) SharedProbe(ctx context.Context, probe func() bool) bool {
	e.shared.mu.Lock()
	if call := e.shared.cur; call != nil {
		e.shared.mu.Unlock()
		select {
		case <-call.done:
			return call.ok
		case <-ctx.Done():
			return false
		}
	}
	call := &probeCall{done: make(chan struct{})}
	e.shared.cur = call
	e.shared.mu.Unlock()
	call.ok = probe()
	e.shared.mu.Lock()
	e.shared.cur = nil
	e.shared.mu.Unlock()
	close(call.done)
	return call.ok
}

// Prober asks an endpoint whether it is healthy (GET /health).
type Prober func(ctx context.Context, e *Endpoint) bool

// Ring is the client's set of endpoints. It is safe for concurrent use.
type Ring struct {
	eps         []*Endpoint
	next        atomic.Uint64
	failTimeout time.Duration
	maxFails    int
	probe       Prober
	// allDownProbe is how often an endpoint may be probed while every endpoint
	// is unhealthy, so that a client of one restarted member recovers quickly.
	allDownProbe time.Duration
	onHealth     func(e *Endpoint, healthy bool)
	now          func() time.Time

	ctx    context.Context // ends when the ring is closed; bounds background probes
	cancel context.CancelFunc
	mu     sync.Mutex // orders background probes' start and Close
	closed bool
	wg     sync.WaitGroup
}

// Config sets up a Ring.
type Config struct {
	// FailTimeout is how long a failed endpoint stays unhealthy before a probe
	// may bring it back; 0 turns health marking off.
	FailTimeout time.Duration
	// MaxFails is how many consecutive failures make an endpoint unhealthy.
	MaxFails int
	// Probe checks an endpoint whose fail timeout has passed. Nil: none needed.
	Probe Prober
	// AllDownProbe is the probe interval while no endpoint is healthy.
	AllDownProbe time.Duration
	// OnHealth, if set, is called when an endpoint is marked unhealthy and
	// when it is healthy again, outside the ring's locks.
	OnHealth func(e *Endpoint, healthy bool)
}

// NewRing returns a ring over the endpoints, starting at a random one.
func NewRing(eps []*Endpoint, cfg Config) *Ring {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Ring{
		eps:          eps,
		failTimeout:  cfg.FailTimeout,
		maxFails:     max(cfg.MaxFails, 1),
		probe:        cfg.Probe,
		allDownProbe: cfg.AllDownProbe,
		onHealth:     cfg.OnHealth,
		now:          time.Now,
		ctx:          ctx,
		cancel:       cancel,
	}
	r.next.Store(uint64(rand.IntN(len(eps))))
	return r
}

// Endpoints returns the ring's endpoints in configuration order.
func (r *Ring) Endpoints() []*Endpoint { return r.eps }

// Close stops background probes and waits for them.
func (r *Ring) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// goProbe probes e in the background, unless the ring is closed.
func (r *Ring) goProbe(e *Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.probed(e, false)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		defer cancel()
		r.probed(e, r.probe(ctx, e))
	}()
}

// Pick returns the next healthy endpoint not in skip, round-robin, or nil when
// there is none. An unhealthy endpoint whose fail timeout has passed is probed
// in the background and comes back when the probe answers.
func (r *Ring) Pick(skip []*Endpoint) *Endpoint {
	n := len(r.eps)
	start := r.next.Add(1)
	now := r.now()
	for i := 0; i < n; i++ {
		e := r.eps[(start+uint64(i))%uint64(n)]
		if contains(skip, e) {
			continue
		}
		if r.healthy(e, now) {
			return e
		}
	}
	return nil
}

// Recover is for when Pick found nothing: it probes, at once and in turn, the
// endpoints not in skip that are due for a probe, and returns the first that
// answers healthy, or nil. A probe already in flight, such as the one Pick
// starts when a fail timeout has passed, is waited for rather than skipped:
// otherwise the first call after the fail timeout of a lone endpoint would
// fail although the endpoint is back.
func (r *Ring) Recover(ctx context.Context, skip []*Endpoint) *Endpoint {
	if r.probe == nil {
		return nil
	}
	for _, e := range r.eps {
		if contains(skip, e) {
			continue
		}
		if !r.claimProbe(e, r.now(), true) {
			done := r.probeInFlight(e)
			if done == nil {
				continue
			}
			select {
			case <-done:
			case <-ctx.Done():
				return nil
			}
			if r.Healthy(e) {
				return e
			}
			continue
		}
		ok := r.probe(ctx, e)
		r.probed(e, ok)
		if ok {
			return e
		}
	}
	return nil
}

// probeInFlight returns a channel closed when the probe of e in flight ends,
// or nil when there is none.
func (r *Ring) probeInFlight(e *Endpoint) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.probeDone
}

func contains(list []*Endpoint, e *Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// healthy reports whether e may be used now, starting a background probe of
// an endpoint whose fail timeout has passed.
func (r *Ring) healthy(e *Endpoint, now time.Time) bool {
	e.mu.Lock()
	until := e.unhealthyUntil
	e.mu.Unlock()
	if until.IsZero() {
		return true
	}
	if now.Before(until) {
		return false
	}
	if r.probe == nil {
		r.probed(e, true)
		return true
	}
	if r.claimProbe(e, now, false) {
		r.goProbe(e)
	}
	return false
}

// claimProbe marks e as being probed if it is due: its fail timeout has passed,
// or, when allDown, it was not probed within the all-down interval.
func (r *Ring) claimProbe(e *Endpoint, now time.Time, allDown bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.probeDone != nil || e.unhealthyUntil.IsZero() {
		return false
	}
	due := !now.Before(e.unhealthyUntil)
	if allDown && now.Sub(e.lastProbe) >= r.allDownProbe && r.allDownProbe > 0 {
		due = true
	}
	if !due {
		return false
	}
	e.probeDone = make(chan struct{})
	e.lastProbe = now
	return true
}

func (r *Ring) probed(e *Endpoint, ok bool) {
	e.mu.Lock()
	if e.probeDone != nil {
		close(e.probeDone)
		e.probeDone = nil
	}
	if ok {
		back := !e.unhealthyUntil.IsZero()
		e.fails = 0
		e.unhealthyUntil = time.Time{}
		e.mu.Unlock()
		if back {
			r.changed(e, true)
		}
		return
	}
	e.unhealthyUntil = r.now().Add(r.failTimeout)
	e.mu.Unlock()
}

// changed reports a change of e's health to OnHealth.
func (r *Ring) changed(e *Endpoint, healthy bool) {
	if r.onHealth != nil {
		r.onHealth(e, healthy)
	}
}

// Fail records a failed call to e: a transport error or a 5xx answer.
func (r *Ring) Fail(e *Endpoint) {
	if r.failTimeout <= 0 {
		return
	}
	e.mu.Lock()
	e.fails++
	ejected := false
	if e.fails >= r.maxFails {
		now := r.now()
		ejected = e.unhealthyUntil.IsZero()
		e.unhealthyUntil = now.Add(r.failTimeout)
		e.lastProbe = now // the failure counts as a probe that failed
	}
	e.mu.Unlock()
	if ejected {
		r.changed(e, false)
	}
}

// Succeed records a successful call to e.
func (r *Ring) Succeed(e *Endpoint) {
	e.mu.Lock()
	back := !e.unhealthyUntil.IsZero()
	if e.fails != 0 || back {
		e.fails = 0
		e.unhealthyUntil = time.Time{}
	}
	e.mu.Unlock()
	if back {
		r.changed(e, true)
	}
}

// Healthy reports whether e is currently marked healthy.
func (r *Ring) Healthy(e *Endpoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.unhealthyUntil.IsZero()
}

// Dialer returns the DialContext of the transport: TCP to the endpoint's
// address, or, when unixSocket is set, that unix socket whatever the address;
// one connect takes at most timeout.
func Dialer(unixSocket string, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if unixSocket == "" {
		return d.DialContext
	}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", unixSocket)
	}
}

// Conns tracks the connections a dialer made, so that closing the client can
// close them all, in use or idle: no request, stream or transport goroutine
// outlives the client.
type Conns struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewConns wraps dial so that its connections are tracked.
func NewConns(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Conns {
	return &Conns{conns: make(map[*trackedConn]struct{}), dial: dial}
}

// errClosed is returned by dials after CloseAll.
var errClosed = &net.OpError{Op: "dial", Net: "tcp", Err: net.ErrClosed}

// Dial dials and tracks the connection.
func (t *Conns) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	c, err := t.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: t}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return nil, errClosed
	}
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

// Len is the number of open connections.
func (t *Conns) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// CloseAll closes every connection and refuses new dials.
func (t *Conns) CloseAll() {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[*trackedConn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	owner *Conns
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}
