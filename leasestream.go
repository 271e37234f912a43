package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Over HTTP/2 (https), and as a WebSocket over http, the gateway's
// /v3/lease/keepalive is full duplex, like its watch: one request whose body carries a {"ID":"…"} line per renewal
// gets an answer line per renewal back. The KeepAlive loops of a client share
// one such stream per endpoint: a renewal there is a line each way instead of
// a request: for 1,000 leases kept alive, 1.7 times less CPU per renewal for
// client and etcd together, 2 times less for etcd alone, and a seventh of
// the client's allocated bytes (BenchmarkLeaseKeepAlive; BenchmarkLeaseRenew
// shows 2.4 times less back to back). WithWatchMultiplexing(false) turns it
// off with the watch streams.
//
// The short request stays the fallback, and a renewal never depends on the
// stream alone: one whose answer does not come within its attempt bound, or
// whose stream breaks, is sent again as a request of its own at once. A
// stream that goes silent is ended, and the next renewal opens a new one; a
// stream that never answered at all (a proxy that buffers request bodies)
// leaves its endpoint's renewals to short requests for muxRetryAfter.

// errLeaseStreamSilent ends a keepalive stream that left a renewal
// unanswered for its whole attempt bound.
var errLeaseStreamSilent = errors.New("lease keepalive stream: no answer within the attempt timeout")

// errLeaseStreamClosed is why a renewal left a stream that its last
// KeepAlive loop released.
var errLeaseStreamClosed = errors.New("lease keepalive stream closed")

// leaseStream is one duplex keepalive stream to an endpoint.
type leaseStream struct {
	c     *Client
	ep    *endpoint.Endpoint
	ctx   context.Context         // the stream's request; ending it resets the h2 stream
	kill  context.CancelCauseFunc // ends ctx, saying why
	pw    *io.PipeWriter          // the request body of an HTTP/2 stream; nil on a WebSocket
	token string                  // the auth token the stream was opened with

	// Guarded by c.leaseMu.
	refs     int // KeepAlive loops holding the stream
	dead     bool
	answered bool                           // some renewal was answered on it
	waiting  map[LeaseID][]chan leaseAnswer // renewals sent, by lease, in order; nil for one given up

	broken chan struct{} // closed when the stream ends
	err    error         // why, set before broken closes

	wmu    sync.Mutex
	writes []byte        // request lines waiting for the writer
	wake   chan struct{} // signals the writer
}

// leaseAnswer is the answer line of one renewal.
type leaseAnswer struct {
	header ResponseHeader
	ttl    int64
}

// leaseShareable reports whether renewals to ep may share a duplex stream:
// sharing is on, ep speaks HTTP/2 (an https endpoint not heard from yet is
// asked once), and a stream to it has not failed to answer lately.
func (c *Client) leaseShareable(ctx context.Context, ep *endpoint.Endpoint) bool {
	if c.cfg.noMultiplex {
		return false
	}
	c.leaseMu.Lock()
	until := c.leaseUnshared[ep]
	c.leaseMu.Unlock()
	if time.Now().Before(until) {
		return false
	}
	if !ep.TLS {
		// Never wait for /version here: a renewal cannot spare the time.
		return c.webSocketKnownOK(ep)
	}
	if ep.Proto() == 0 {
		c.probe(ctx, ep)
	}
	return ep.Proto() == 2
}

// acquireLeaseStream returns the keepalive stream to ep, opened if needed,
// with one more reference held; nil when there can be none.
func (c *Client) acquireLeaseStream(ctx context.Context, ep *endpoint.Endpoint) *leaseStream {
	prefix, err := c.apiPrefix(ctx)
	if err != nil {
		return nil
	}
	if c.auth != nil {
		if _, err := c.token(ctx); err != nil {
			return nil
		}
	}
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if c.closed.Load() {
		return nil
	}
	s := c.leaseStreams[ep]
	// A stream carries the token it was opened with: once the client has a
	// new one, renewals go on a new stream.
	if s == nil || s.dead || s.token != c.headers.Load().token {
		if s = c.startLeaseStream(ep, prefix); s == nil {
			return nil
		}
		if c.leaseStreams == nil {
			c.leaseStreams = map[*endpoint.Endpoint]*leaseStream{}
		}
		c.leaseStreams[ep] = s
	}
	s.refs++
	return s
}

// release drops a reference to s; the last one ends the stream.
func (s *leaseStream) release() {
	c := s.c
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	s.refs--
	if s.refs == 0 && !s.dead {
		s.dead = true
		if c.leaseStreams[s.ep] == s {
			delete(c.leaseStreams, s.ep)
		}
		s.kill(errLeaseStreamClosed)
	}
}

// startLeaseStream opens a keepalive stream to ep: an HTTP/2 request over
// https, a WebSocket over http. The caller holds c.leaseMu.
func (c *Client) startLeaseStream(ep *endpoint.Endpoint, prefix string) *leaseStream {
	s := &leaseStream{
		c:       c,
		ep:      ep,
		waiting: map[LeaseID][]chan leaseAnswer{},
		broken:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	s.ctx, s.kill = context.WithCancelCause(c.ctx)
	hdrs := c.headers.Load()
	s.token = hdrs.token
	// A renewal needs a leader: with the header, etcd ends the stream when
	// its member loses it, and the renewals move on. (A WebSocket does not
	// pass it: there a renewal without an answer in time falls back to a
	// short request, which has it.)
	req, err := c.newRequest(s.ctx, ep, prefix+wire.PathLeaseKeepAlive, &rpc{path: wire.PathLeaseKeepAlive, idempotent: true, leader: true}, hdrs)
	if err != nil {
		s.kill(nil)
		return nil
	}
	if !ep.TLS {
		open := func() (io.ReadCloser, error) {
			lines, sink, err := c.openWebSocket(s.ctx, ep, req, s.token, nil)
			if err != nil {
				return nil, err
			}
			if !c.spawn(func() { s.write(sink) }) {
				lines.Close()
				return nil, ErrClosed
			}
			return lines, nil
		}
		if !c.spawn(func() { s.read(open) }) {
			s.kill(nil)
			return nil
		}
		return s
	}
	var sink func([]byte) error
	s.pw, sink = pipeBody(req)
	if !c.spawn(func() { s.write(sink) }) {
		s.kill(nil)
		return nil
	}
	if !c.spawn(func() { s.read(func() (io.ReadCloser, error) { return c.duplexRoundTrip(req, ep, nil) }) }) {
		s.kill(nil) // the writer ends with it
		return nil
	}
	return s
}

// write hands the queued request lines to sink until the stream ends.
func (s *leaseStream) write(sink func([]byte) error) {
	var batch []byte
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			if s.pw != nil {
				s.pw.CloseWithError(s.ctx.Err())
			}
			return
		}
		s.wmu.Lock()
		batch, s.writes = s.writes, batch[:0]
		s.wmu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := sink(batch); err != nil {
			return // the stream is broken; read reports it
		}
	}
}

// read opens the stream and hands each answer line to the renewal waiting
// for it.
func (s *leaseStream) read(open func() (io.ReadCloser, error)) {
	c := s.c
	err := s.readStream(open)
	if cause := context.Cause(s.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	c.leaseMu.Lock()
	s.err = err
	s.dead = true
	if c.leaseStreams[s.ep] == s {
		delete(c.leaseStreams, s.ep)
	}
	if errors.Is(err, errNoCreated) {
		// A WebSocket upgrade refused on the way: short requests it is, for
		// a while.
		if c.leaseUnshared == nil {
			c.leaseUnshared = map[*endpoint.Endpoint]time.Time{}
		}
		c.leaseUnshared[s.ep] = time.Now().Add(muxRetryAfter)
	}
	s.waiting = nil
	c.leaseMu.Unlock()
	s.kill(nil)
	if s.pw != nil {
		s.pw.CloseWithError(err) // unblocks a write the transport no longer reads
	}
	close(s.broken)
}

func (s *leaseStream) readStream(open func() (io.ReadCloser, error)) error {
	c := s.c
	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	lr := wire.NewLineReader(body, 512, c.maxBody)
	for {
		line, err := lr.Next()
		if err != nil {
			return err
		}
		var out wire.LeaseResponse
		st, err := wire.DecodeLeaseLine(line, &out)
		if err != nil {
			return malformed(s.ep.URL, err)
		}
		if st != nil {
			return newError(*st, s.ep.URL)
		}
		s.dispatch(LeaseID(out.ID), leaseAnswer{header: ResponseHeader(out.Header), ttl: out.TTL})
	}
}

// dispatch hands an answer to the first renewal of its lease still waiting.
func (s *leaseStream) dispatch(id LeaseID, a leaseAnswer) {
	c := s.c
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	s.answered = true
	w := s.waiting[id]
	if len(w) == 0 {
		return
	}
	ch := w[0]
	if len(w) == 1 {
		delete(s.waiting, id)
	} else {
		s.waiting[id] = w[1:]
	}
	if ch != nil {
		ch <- a // buffered, and the only send
	}
}

// renew renews id on the stream, waiting at most wait for the answer. Any
// error but ErrLeaseNotFound means the stream could not renew it.
func (s *leaseStream) renew(ctx context.Context, id LeaseID, wait time.Duration) (*LeaseKeepAliveResponse, error) {
	c := s.c
	ch := make(chan leaseAnswer, 1)
	c.leaseMu.Lock()
	if s.dead {
		err := s.err
		c.leaseMu.Unlock()
		if err == nil {
			err = errLeaseStreamClosed
		}
		return nil, err
	}
	s.waiting[id] = append(s.waiting[id], ch)
	c.leaseMu.Unlock()
	s.wmu.Lock()
	s.writes = strconv.AppendInt(append(s.writes, `{"ID":"`...), int64(id), 10)
	s.writes = append(s.writes, "\"}\n"...)
	s.wmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a := <-ch:
		if a.ttl <= 0 {
			// A lease that is gone is no error to etcd: the answer just has no TTL.
			return nil, fmt.Errorf("etcdgw: KeepAlive(%d): %w", id, ErrLeaseNotFound)
		}
		return &LeaseKeepAliveResponse{Header: a.header, ID: id, TTL: a.ttl}, nil
	case <-s.broken:
		// An answer may have come just before the stream ended.
		select {
		case a := <-ch:
			if a.ttl > 0 {
				return &LeaseKeepAliveResponse{Header: a.header, ID: id, TTL: a.ttl}, nil
			}
		default:
		}
		if s.err == nil {
			return nil, errLeaseStreamClosed
		}
		return nil, s.err
	case <-t.C:
		// A stream that leaves a renewal unanswered this long is of no use:
		// its other renewals move to short requests too, and the next
		// renewal opens a new one. One that never answered anything
		// (a proxy holding the request body back) is not tried again soon.
		c.leaseMu.Lock()
		if !s.answered {
			if c.leaseUnshared == nil {
				c.leaseUnshared = map[*endpoint.Endpoint]time.Time{}
			}
			c.leaseUnshared[s.ep] = time.Now().Add(muxRetryAfter)
		}
		s.giveUp(id, ch)
		c.leaseMu.Unlock()
		s.kill(errLeaseStreamSilent)
		return nil, errLeaseStreamSilent
	case <-ctx.Done():
		c.leaseMu.Lock()
		s.giveUp(id, ch)
		c.leaseMu.Unlock()
		return nil, ctx.Err()
	}
}

// giveUp leaves ch's place among the renewals of id waiting, so that later
// answers stay matched to their requests. The caller holds c.leaseMu.
func (s *leaseStream) giveUp(id LeaseID, ch chan leaseAnswer) {
	for i, w := range s.waiting[id] {
		if w == ch {
			s.waiting[id][i] = nil
		}
	}
}

// streamWait is how long a renewal on a stream waits for its answer, with
// ctx bounded by the lease's expiry: the attempt timeout, and never more than
// half of what is left, so that a short request still has time. 0 means too
// little is left to try the stream.
func (c *Client) streamWait(ctx context.Context) time.Duration {
	wait := c.cfg.attemptTimeout
	if wait <= 0 {
		wait = DefaultTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	if wait < minAttemptTimeout {
		return 0
	}
	return wait
}

// renew renews the lease of k once: on the duplex stream to its member where
// there is one, else, or on any trouble with it, with a short request.
func (k *keepAlive) renew(ctx context.Context) (*LeaseKeepAliveResponse, error) {
	if s := k.stream(ctx); s != nil {
		if wait := k.c.streamWait(ctx); wait > 0 {
			r, err := k.renewOn(ctx, s, wait)
			if err == nil || errors.Is(err, ErrLeaseNotFound) {
				return r, err
			}
			if ctx.Err() != nil {
				return nil, err
			}
			k.dropStream()
		}
	}
	return k.c.KeepAliveOnce(ctx, k.id)
}

// renewOn renews on s, as one observed LeaseKeepAlive call.
func (k *keepAlive) renewOn(ctx context.Context, s *leaseStream, wait time.Duration) (*LeaseKeepAliveResponse, error) {
	c := k.c
	if c.cfg.observer == nil {
		return s.renew(ctx, k.id, wait)
	}
	octx, ob := c.startCall(ctx, "LeaseKeepAlive")
	began := time.Now()
	r, err := s.renew(ctx, k.id, wait)
	if ob != nil {
		status := 0
		if err == nil || errors.Is(err, ErrLeaseNotFound) {
			status = http.StatusOK
		}
		c.observeAttempt(octx, ob, s.ep.URL, status, err, time.Since(began))
		c.endCall(octx, ob, err)
	}
	return r, err
}

// stream returns the duplex stream the loop renews on, nil when it uses
// short requests. It keeps its stream while the stream runs, its member is
// healthy and the token is current.
func (k *keepAlive) stream(ctx context.Context) *leaseStream {
	c := k.c
	if s := k.shared; s != nil {
		c.leaseMu.Lock()
		ok := !s.dead && s.token == c.headers.Load().token
		c.leaseMu.Unlock()
		if ok && c.ring.Healthy(s.ep) {
			return s
		}
		k.dropStream()
	}
	if !c.leaseDuplexPossible() {
		// Without asking the ring: Pick moves its round-robin on.
		return nil
	}
	ep := c.ring.Pick(nil)
	if ep == nil || !c.leaseShareable(ctx, ep) {
		return nil
	}
	k.shared = c.acquireLeaseStream(ctx, ep)
	return k.shared
}

// dropStream lets go of the loop's stream.
func (k *keepAlive) dropStream() {
	if k.shared != nil {
		k.shared.release()
		k.shared = nil
	}
}

// leaseDuplexPossible reports whether some endpoint may carry a keepalive
// stream.
func (c *Client) leaseDuplexPossible() bool {
	if c.cfg.noMultiplex {
		return false
	}
	for _, ep := range c.ring.Endpoints() {
		if ep.TLS && ep.Proto() != 1 || !ep.TLS && wsSupported {
			return true
		}
	}
	return false
}
