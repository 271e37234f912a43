package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Over HTTP/2 (https) the gateway's watch is full duplex, and over http as a
// WebSocket (watchws.go): one /v3/watch
// request can carry many create_request and cancel_request messages while
// etcd streams the responses of all its watchers back. A client keeps one such
// stream per endpoint for all its watches; each watch has an ID on it, chosen
// by the client, and a cancelled watch sends cancel_request instead of closing
// a connection.
//
// A watch whose reader falls behind does not hold up the others: when its
// buffer is full the stream cancels it on the server and drops what comes for
// it, and after a backoff that grows with each eviction in a row the watch
// subscribes again from its resume point. Nothing is lost, and memory stays
// bounded.
//
// A proxy that buffers request bodies never lets a shared stream start: a
// watch that gets no created answer in time while its member answers probes
// moves its member's watches to requests of their own for muxRetryAfter.

// muxBuffer is how many messages a multiplexed watch may hold unread.
const muxBuffer = 16

// muxRetryAfter is how long the watches to a member whose shared stream
// confirmed nothing use requests of their own before sharing is tried again.
const muxRetryAfter = 10 * time.Minute

// canMultiplex reports whether watches on ep may share a stream: sharing is
// on, its shared stream has not failed to start lately, and ep speaks HTTP/2
// (an https endpoint not heard from yet is asked once) or, over http, is an
// etcd that takes a WebSocket (see webSocketOK).
func (c *Client) canMultiplex(ctx context.Context, ep *endpoint.Endpoint) bool {
	if c.cfg.noMultiplex {
		return false
	}
	c.muxMu.Lock()
	m := c.muxes[ep]
	c.muxMu.Unlock()
	if m != nil && time.Now().Before(m.unsharedUntil) {
		return false
	}
	if !ep.TLS {
		return c.webSocketOK(ctx, ep)
	}
	if ep.Proto() == 0 {
		c.probe(ctx, ep)
	}
	return ep.Proto() == 2
}

// webSocketOK reports whether watches over http to ep may share a WebSocket:
// its member runs etcd 3.5 or later (a WebSocket crashes etcd 3.4.25 to
// 3.4.45 run with its default logger, so 3.4 only with
// WithWebSocketOnEtcd34), and, when the client has an auth token, one that
// takes it as a Bearer token (3.5.32, 3.6.13, 3.7.0 and later): the
// gateway's WebSocket proxy passes no other header to etcd.
func (c *Client) webSocketOK(ctx context.Context, ep *endpoint.Endpoint) bool {
	if !wsSupported {
		return false
	}
	return c.webSocketAllowed(ep.FetchVersion(ctx, versionRetry, func() string { return c.memberVersion(ep) }))
}

// webSocketKnownOK is webSocketOK for a caller that must not wait for a
// member's answer (a lease renewal): a member whose version is not known yet
// is asked in the background, and gets short requests until it answers.
func (c *Client) webSocketKnownOK(ep *endpoint.Endpoint) bool {
	if !wsSupported {
		return false
	}
	v := ep.Version()
	if v == "" {
		c.spawn(func() { ep.FetchVersion(c.ctx, versionRetry, func() string { return c.memberVersion(ep) }) })
		return false
	}
	return c.webSocketAllowed(v)
}

// webSocketAllowed applies webSocketOK's rules to a member of version v.
func (c *Client) webSocketAllowed(v string) bool {
	major, minor, patch, ok := parseVersion(v)
	switch {
	case !ok || major < 3 || major == 3 && minor < 4:
		return false
	case major == 3 && minor == 4 && !c.cfg.webSocket34:
		return false
	}
	if c.auth == nil && c.headers.Load().token == "" {
		return true
	}
	if major > 3 {
		return true
	}
	switch minor {
	case 4:
		return false
	case 5:
		return patch >= 32
	case 6:
		return patch >= 13
	}
	return true
}

// versionRetry is how long the watches to a member whose version could not be
// learned use requests of their own before it is asked again.
const versionRetry = 5 * time.Second

// memberVersion asks ep for its etcd version; "" when it does not answer.
func (c *Client) memberVersion(ep *endpoint.Endpoint) string {
	ctx, cancel := context.WithTimeout(c.ctx, probeTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, ep, wire.PathVersion, &rpc{method: http.MethodGet, path: wire.PathVersion, rootPath: true, noAuth: true}, c.headers.Load())
	if err != nil {
		return ""
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return ""
	}
	b, err := c.readAll(resp)
	if err != nil {
		return ""
	}
	defer c.putBuf(b)
	var v wire.VersionResponse
	if resp.StatusCode != http.StatusOK || wire.DecodeVersion(b.b, &v) != nil {
		return ""
	}
	return v.Server
}

// parseVersion splits "3.5.32" (or "3.6.0-alpha.0") into its numbers.
func parseVersion(v string) (major, minor, patch int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	p, _, _ := strings.Cut(parts[2], "-")
	var err1, err2, err3 error
	major, err1 = strconv.Atoi(parts[0])
	minor, err2 = strconv.Atoi(parts[1])
	patch, err3 = strconv.Atoi(p)
	return major, minor, patch, err1 == nil && err2 == nil && err3 == nil
}

// markUnshared makes the watches to ep use requests of their own for
// muxRetryAfter, and moves those on its shared stream to them at once.
func (c *Client) markUnshared(ep *endpoint.Endpoint) {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if m := c.muxes[ep]; m != nil && !m.dead && m.kill != nil {
		m.dead = true
		m.kill(errNoCreated)
	}
	if c.muxes == nil {
		c.muxes = map[*endpoint.Endpoint]*watchMux{}
	}
	// A stream that never runs holds the mark.
	c.muxes[ep] = &watchMux{ep: ep, dead: true, unsharedUntil: time.Now().Add(muxRetryAfter)}
}

// watchMux is one duplex watch stream to an endpoint.
type watchMux struct {
	c     *Client
	ep    *endpoint.Endpoint
	ctx   context.Context                             // the stream's request; ending it resets the h2 stream
	kill  context.CancelCauseFunc                     // ends ctx, saying why
	pw    *io.PipeWriter                              // the request body of an HTTP/2 stream; nil on a WebSocket
	act   *activity                                   // when the stream last heard from its member
	ping  atomic.Pointer[func(context.Context) error] // a WebSocket's ping, once it is open
	token string                                      // the auth token the stream was opened with

	// Guarded by c.muxMu.
	subs          map[int64]*muxSub
	creates       []*muxSub // subscriptions whose created answer has not come, in order
	nextID        int64
	dead          bool
	unsharedUntil time.Time // set on a stream that never runs: see markUnshared

	broken chan struct{} // closed when the stream ends
	err    error         // why, set before broken closes

	wmu    sync.Mutex
	writes [][]byte      // messages waiting for the writer
	wake   chan struct{} // signals the writer
}

// muxSub is one watch on a multiplexed stream.
type muxSub struct {
	id   int64
	in   chan *muxMsg  // pointers: a buffer of muxBuffer values would be 3.5 KiB a watch
	stop chan struct{} // closed when the stream dropped this watch
	// tooLarge is why it was dropped when a message for it was over the
	// client's limit; nil when it was dropped for falling behind. Set before
	// stop closes.
	tooLarge error
	gone     bool // removed from the stream (guarded by c.muxMu)
}

// muxMsg is one message for a watch and the size of its line.
type muxMsg struct {
	m    wire.WatchResponse
	size int
}

// subscribe puts w on the stream to ep, creating the stream if needed, and
// sends its create_request.
func (c *Client) subscribe(w *watcher, ep *endpoint.Endpoint, req *wire.WatchCreateRequest) (*watchMux, *muxSub, error) {
	prefix, err := c.apiPrefix(w.ctx)
	if err != nil {
		return nil, nil, err
	}
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if c.closed.Load() {
		return nil, nil, ErrClosed
	}
	m := c.muxes[ep]
	// etcd checks a new watch against the token its stream was opened with:
	// once the client has a new token, new watches go on a new stream. The
	// old stream keeps its watches, which etcd already accepted.
	if m == nil || m.dead || m.token != c.headers.Load().token {
		m, err = c.startMux(ep, prefix)
		if err != nil {
			return nil, nil, err
		}
		if c.muxes == nil {
			c.muxes = map[*endpoint.Endpoint]*watchMux{}
		}
		c.muxes[ep] = m
	}
	m.nextID++
	sub := &muxSub{id: m.nextID, in: make(chan *muxMsg, muxBuffer), stop: make(chan struct{})}
	m.subs[sub.id] = sub
	m.creates = append(m.creates, sub)
	r := *req
	r.WatchID = sub.id
	m.send(wire.AppendWatchCreate(nil, &r))
	return m, sub, nil
}

// unsubscribe takes sub off the stream, telling etcd to cancel it, and ends
// the stream when it was the last watch on it.
func (c *Client) unsubscribe(m *watchMux, sub *muxSub) {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if !sub.gone {
		m.drop(sub)
	}
	if len(m.subs) == 0 && !m.dead {
		m.dead = true
		if c.muxes[m.ep] == m {
			delete(c.muxes, m.ep)
		}
		m.kill(nil) // resets the h2 stream; an EOF of the body would not end it
	}
}

// drop removes sub from the stream and cancels its watcher on the server.
// The caller holds c.muxMu.
func (m *watchMux) drop(sub *muxSub) {
	sub.gone = true
	delete(m.subs, sub.id)
	for i, s := range m.creates {
		if s == sub {
			// Its created answer is still to come; keep the place in line so
			// that answers stay matched to requests.
			m.creates[i] = nil
		}
	}
	if !m.dead {
		m.send(wire.AppendWatchCancel(nil, sub.id))
	}
}

// startMux opens a duplex watch stream to ep: an HTTP/2 request over https,
// a WebSocket over http. The caller holds c.muxMu.
func (c *Client) startMux(ep *endpoint.Endpoint, prefix string) (*watchMux, error) {
	m := &watchMux{
		c:      c,
		ep:     ep,
		subs:   map[int64]*muxSub{},
		broken: make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	m.ctx, m.kill = context.WithCancelCause(c.ctx)
	hdrs := c.headers.Load()
	m.token = hdrs.token
	req, err := c.newRequest(m.ctx, ep, prefix+wire.PathWatch, &rpc{path: wire.PathWatch, idempotent: true, leader: true}, hdrs)
	if err != nil {
		m.kill(nil)
		return nil, err
	}
	if !ep.TLS {
		if !c.spawn(func() { m.read(func() (io.ReadCloser, error) { return m.dialWebSocket(req) }) }) {
			m.kill(nil)
			return nil, ErrClosed
		}
		return m, nil
	}
	var sink func([]byte) error
	m.pw, sink = pipeBody(req)
	open := func() (io.ReadCloser, error) { return c.duplexRoundTrip(req, ep, m.act) }
	if !c.spawn(func() { m.write(sink) }) || !c.spawn(func() { m.read(open) }) {
		m.kill(nil)
		return nil, ErrClosed
	}
	return m, nil
}

// pingConn pings the stream's WebSocket; nil over HTTP/2, whose transport
// pings the connection itself, and before the WebSocket is open.
func (m *watchMux) pingConn(ctx context.Context) error {
	if p := m.ping.Load(); p != nil {
		return (*p)(ctx)
	}
	return nil
}

// send queues a message for the stream; it never blocks.
func (m *watchMux) send(msg []byte) {
	m.wmu.Lock()
	m.writes = append(m.writes, msg)
	m.wmu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// write hands the queued messages to sink, in order, until the stream ends.
func (m *watchMux) write(sink func([]byte) error) {
	for {
		select {
		case <-m.wake:
		case <-m.ctx.Done():
			if m.pw != nil {
				m.pw.CloseWithError(m.ctx.Err())
			}
			return
		}
		m.wmu.Lock()
		batch := m.writes
		m.writes = nil
		m.wmu.Unlock()
		for _, msg := range batch {
			if err := sink(msg); err != nil {
				return // the stream is broken; read reports it
			}
		}
	}
}

// read opens the stream and dispatches its messages to the watches, with a
// keepalive that ends the stream when it goes silent and its member no longer
// answers.
func (m *watchMux) read(open func() (io.ReadCloser, error)) {
	c := m.c
	act := newActivity()
	guarded := make(chan struct{})
	go func() {
		defer close(guarded)
		c.keepalive(m.ctx, m.ep, act, nil, m.kill, m.pingConn)
	}()
	m.act = act
	err := m.readStream(open, act)
	if cause := context.Cause(m.ctx); errors.Is(cause, errStreamStalled) || errors.Is(cause, errNoCreated) {
		err = fmt.Errorf("%s: %w", m.ep.URL, cause)
	}
	c.muxMu.Lock()
	m.err = err
	m.dead = true
	if c.muxes[m.ep] == m {
		delete(c.muxes, m.ep)
	}
	c.muxMu.Unlock()
	m.kill(nil)
	<-guarded
	if m.pw != nil {
		m.pw.CloseWithError(err) // unblocks a write the transport no longer reads
	}
	close(m.broken)
}

// errCutMidLine ends a shared stream that broke inside a message.
var errCutMidLine = errors.New("stream cut inside a message")

// pipeBody makes req's body a pipe, for a duplex HTTP/2 stream: it returns
// the pipe's writer and a function that writes one message to it.
func pipeBody(req *http.Request) (*io.PipeWriter, func([]byte) error) {
	pr, pw := io.Pipe()
	req.Body = pr
	req.ContentLength = -1
	req.GetBody = nil
	return pw, func(msg []byte) error {
		_, err := pw.Write(msg)
		return err
	}
}

// duplexRoundTrip sends the request of a duplex HTTP/2 stream to ep and
// returns the body of its answer; an error answer is an *Error. act, when not
// nil, hears of the answer's bytes.
func (c *Client) duplexRoundTrip(req *http.Request, ep *endpoint.Endpoint, act *activity) (io.ReadCloser, error) {
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	ep.SetProto(resp.ProtoMajor)
	var body io.Reader = resp.Body
	if act != nil {
		act.touch()
		body = watchedBody{resp.Body, act}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		return nil, newError(wire.ParseErrorBody(resp.StatusCode, b), ep.URL)
	}
	return resp.Body, nil
}

func (m *watchMux) readStream(open func() (io.ReadCloser, error), act *activity) error {
	c := m.c
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	body := watchedBody{rc, act}
	lr := wire.NewLineReader(body, 4096, c.maxBody)
	for {
		line, err := lr.Next()
		if err != nil {
			if !errors.Is(err, wire.ErrLineTooLong) {
				return err
			}
			// The message over the limit ends its own watch only; the
			// others go on after it.
			id, ok := wire.WatchIDOf(lr.Head())
			if !ok {
				return tooLargeError(m.ep, c.maxBody, "a watch message")
			}
			m.refuse(id, tooLargeError(m.ep, c.maxBody, "a watch message"))
			lr.Resume()
			continue
		}
		var a wire.Arena
		var msg wire.WatchResponse
		st, err := wire.DecodeWatchLine(line, &a, &msg)
		if err != nil {
			if lr.Tail() {
				return fmt.Errorf("%w: %v", errCutMidLine, err)
			}
			return malformed(m.ep.URL, err)
		}
		if st != nil {
			return newError(*st, m.ep.URL)
		}
		m.dispatch(&msg, len(line))
	}
}

// dispatch hands a message to its watch, or drops the watch if it is full.
func (m *watchMux) dispatch(msg *wire.WatchResponse, size int) {
	c := m.c
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	var sub *muxSub
	if msg.Created {
		// Created answers come in the order of the requests; a failed
		// create carries ID -1, so the order is what matches them.
		for len(m.creates) > 0 && sub == nil {
			sub = m.creates[0]
			m.creates = m.creates[1:]
			if sub == nil {
				// The watch left before its answer came: drop the server's
				// watcher too, if it was made.
				if !msg.Canceled && msg.WatchID > 0 && m.subs[msg.WatchID] == nil {
					m.send(wire.AppendWatchCancel(nil, msg.WatchID))
				}
				return
			}
		}
	} else if msg.WatchID == progressAll && progressOnly(msg) {
		m.broadcastProgress(msg, size)
		return
	} else {
		sub = m.subs[msg.WatchID]
	}
	if sub == nil || sub.gone {
		return
	}
	select {
	case sub.in <- &muxMsg{*msg, size}:
		if msg.Canceled {
			// etcd ended this watch: it stops here and sends nothing more.
			sub.gone = true
			delete(m.subs, sub.id)
		}
	default:
		m.drop(sub)
		close(sub.stop)
		c.evictions.Add(1)
	}
}

// refuse drops the watch with this ID from the stream, for a message over
// the client's limit.
func (m *watchMux) refuse(id int64, err error) {
	m.c.muxMu.Lock()
	defer m.c.muxMu.Unlock()
	sub := m.subs[id]
	if sub == nil || sub.gone {
		return
	}
	m.drop(sub)
	sub.tooLarge = err
	close(sub.stop)
}

// muxStream runs w on the multiplexed stream to ep until the stream ends, the
// watch ends, or the stream drops it.
func (w *watcher) muxStream(ep *endpoint.Endpoint) watchEnd {
	c := w.c
	req, err := w.request()
	if err != nil {
		return w.notStarted(err)
	}
	m, sub, err := c.subscribe(w, ep, &req)
	if err != nil {
		return w.notStarted(err)
	}
	since := time.Now()
	defer c.unsubscribe(m, sub)
	w.token = m.token
	// A proxy that buffers request bodies holds the shared stream back for
	// good: without a created answer in time, the watch asks its member
	// whether it is there at all.
	// Once the watch runs, the timer goes: an idle watch holds as little
	// as it can, which counts with thousands of them.
	confirm := time.NewTimer(c.cfg.streamIdle + c.cfg.streamTimeout)
	confirmed := confirm.C
	defer func() {
		if confirm != nil {
			confirm.Stop()
		}
	}()
	for {
		select {
		case msg := <-sub.in:
			if end, over := w.handle(&msg.m, msg.size, ep); over {
				return end
			}
			if confirm != nil && w.running.Load() {
				confirm.Stop()
				confirm, confirmed = nil, nil
			}
		case <-confirmed:
			if w.running.Load() {
				confirm, confirmed = nil, nil
				continue
			}
			end := w.end(watchNoCreated, fmt.Errorf("%s: %w", ep.URL, errNoCreated))
			end.shared = true
			end.memberOK = c.probeWithin(w.ctx, ep)
			end.ctxDone = w.ctx.Err() != nil
			return end
		case <-sub.stop:
			// Handle what was buffered before the drop.
			if end, over := w.drain(sub, ep); over {
				return end
			}
			if sub.tooLarge != nil {
				return w.end(watchTooLarge, sub.tooLarge)
			}
			if time.Since(since) >= evictionReset {
				w.evictions = 0
			}
			w.evictions++
			end := w.end(watchEvicted, nil)
			end.shared = true
			return end
		case <-m.broken:
			if end, over := w.drain(sub, ep); over {
				return end
			}
			return w.muxBroken(ep, m.err)
		case <-w.ctx.Done():
			return watchEnd{ctxDone: true}
		}
	}
}

// muxBroken describes the end of a shared stream to one of its watches.
func (w *watcher) muxBroken(ep *endpoint.Endpoint, err error) watchEnd {
	var e *Error
	if errors.As(err, &e) {
		end := w.status(e)
		end.shared = true
		return end
	}
	end := w.end(watchCut, err)
	end.shared = true
	switch {
	case errors.Is(err, errStreamStalled):
		end.how = watchStalled
	case errors.Is(err, errNoCreated):
		end.how, end.memberOK = watchNoCreated, true
	case errors.Is(err, ErrResponseTooLarge):
		end.how = watchTooLarge
	case errors.Is(err, ErrMalformedResponse):
		end.how = watchMalformed
	case errors.Is(err, errCutMidLine):
		end.how = watchCutMidLine
	default:
		end.err = fmt.Errorf("%s: %w", ep.URL, err)
	}
	return end
}

// drain handles the messages sub buffered before its stream went away; over
// reports that one of them ended the watch.
func (w *watcher) drain(sub *muxSub, ep *endpoint.Endpoint) (end watchEnd, over bool) {
	for {
		select {
		case msg := <-sub.in:
			if end, over := w.handle(&msg.m, msg.size, ep); over {
				return end, true
			}
		default:
			return watchEnd{}, false
		}
	}
}

// progressAll is the watch ID of etcd's answer to a progress_request: it
// speaks for every watch on the stream.
const progressAll = -1

// progressOnly reports a message that carries nothing but a revision.
func progressOnly(msg *wire.WatchResponse) bool {
	return !msg.Created && !msg.Canceled && !msg.Fragment && len(msg.Events) == 0 && msg.CompactRevision == 0
}

// broadcastProgress hands etcd's answer to a progress_request to every watch
// on the stream that etcd created. A watch whose buffer is full skips it: a
// progress notification may be lost, never an event. The caller holds
// c.muxMu.
func (m *watchMux) broadcastProgress(msg *wire.WatchResponse, size int) {
	waiting := map[*muxSub]bool{}
	for _, s := range m.creates {
		if s != nil {
			waiting[s] = true
		}
	}
	for _, sub := range m.subs {
		if sub.gone || waiting[sub] {
			continue
		}
		select {
		case sub.in <- &muxMsg{*msg, size}:
		default:
		}
	}
}

// RequestProgress asks etcd for a progress notification on every duplex
// watch stream of the client (clientv3's Watcher.RequestProgress): each watch
// on them then gets a response with no events whose header revision is one up
// to which it has seen every change (IsProgressNotify). etcd answers only when
// every watch on a stream has caught up, and drops the request otherwise, so a
// caller waiting for a revision repeats it. etcd before 3.4.25 and 3.5.8 can
// send the answer ahead of events (etcd #15220): use it only with servers
// that have the fix.
//
// It returns an error wrapping errors.ErrUnsupported when watches cannot
// share a duplex stream (an HTTP/2 stream over https, a WebSocket over http):
// https endpoints that answered over HTTP/1.1, a build without WebSocket
// (js), or WithWatchMultiplexing(false). Watches to members that cannot take
// a WebSocket (etcd 3.4, a proxy that refuses the upgrade) run on requests of
// their own and get no notification. With no watch running there is nothing
// to ask, and it returns nil.
func (c *Client) RequestProgress(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcdgw: RequestProgress: %w", err)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.muxMu.Lock()
	sent := false
	for _, m := range c.muxes {
		if !m.dead && len(m.subs) > 0 {
			m.send(wire.AppendWatchProgress(nil))
			sent = true
		}
	}
	c.muxMu.Unlock()
	if sent || c.duplexPossible() {
		return nil
	}
	return fmt.Errorf("etcdgw: RequestProgress: watches do not share a duplex stream (HTTP/1.1 over https, no WebSocket, or WithWatchMultiplexing(false)): %w", errors.ErrUnsupported)
}

// duplexPossible reports whether some endpoint may carry a shared watch
// stream.
func (c *Client) duplexPossible() bool {
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
