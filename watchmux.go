package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Over HTTP/2 (https) the gateway's watch is full duplex: one /v3/watch
// request can carry many create_request and cancel_request messages while
// etcd streams the responses of all its watchers back. A client keeps one such
// stream per endpoint for all its watches; each watch has an ID on it, chosen
// by the client, and a cancelled watch sends cancel_request instead of closing
// a connection.
//
// A watch whose reader falls behind does not hold up the others: when its
// buffer is full the stream cancels it on the server and drops what comes for
// it, and once its reader has drained the buffer the watch subscribes again
// from its resume point. Nothing is lost, and memory stays bounded.

// muxBuffer is how many messages a multiplexed watch may hold unread.
const muxBuffer = 32

// canMultiplex reports whether watches on ep may share a stream: ep speaks
// HTTP/2. An https endpoint not heard from yet is asked once.
func (c *Client) canMultiplex(ctx context.Context, ep *endpoint.Endpoint) bool {
	if !ep.TLS {
		return false
	}
	if ep.Proto() == 0 {
		c.probe(ctx, ep)
	}
	return ep.Proto() == 2
}

// watchMux is one duplex watch stream to an endpoint.
type watchMux struct {
	c      *Client
	ep     *endpoint.Endpoint
	ctx    context.Context // the stream's request; cancelling it resets the h2 stream
	cancel context.CancelFunc
	pw     *io.PipeWriter
	token  string // the auth token the stream was opened with

	// Guarded by c.muxMu.
	subs    map[int64]*muxSub
	creates []*muxSub // subscriptions whose created answer has not come, in order
	nextID  int64
	dead    bool

	broken chan struct{} // closed when the stream ends
	err    error         // why, set before broken closes

	wmu    sync.Mutex
	writes [][]byte      // messages waiting for the writer
	wake   chan struct{} // signals the writer
}

// muxSub is one watch on a multiplexed stream.
type muxSub struct {
	id      int64
	in      chan wire.WatchResponse
	evicted chan struct{} // closed when the stream dropped this watch for being slow
	gone    bool          // removed from the stream (guarded by c.muxMu)
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
	sub := &muxSub{id: m.nextID, in: make(chan wire.WatchResponse, muxBuffer), evicted: make(chan struct{})}
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
		m.cancel() // resets the h2 stream; an EOF of the body would not end it
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

// startMux opens a duplex watch stream to ep. The caller holds c.muxMu.
func (c *Client) startMux(ep *endpoint.Endpoint, prefix string) (*watchMux, error) {
	pr, pw := io.Pipe()
	m := &watchMux{
		c:      c,
		ep:     ep,
		pw:     pw,
		subs:   map[int64]*muxSub{},
		broken: make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	m.ctx, m.cancel = context.WithCancel(c.ctx)
	hdrs := c.headers.Load()
	m.token = hdrs.token
	req, err := c.newRequest(m.ctx, ep, prefix+wire.PathWatch, &rpc{path: wire.PathWatch, idempotent: true, leader: true}, hdrs)
	if err != nil {
		m.cancel()
		return nil, err
	}
	req.Body = pr
	req.ContentLength = -1
	req.GetBody = nil
	if !c.spawn(m.write) || !c.spawn(func() { m.read(req) }) {
		m.cancel()
		return nil, ErrClosed
	}
	return m, nil
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

// write writes the queued messages to the request body, in order.
func (m *watchMux) write() {
	for {
		select {
		case <-m.wake:
		case <-m.ctx.Done():
			m.pw.CloseWithError(m.ctx.Err())
			return
		}
		m.wmu.Lock()
		batch := m.writes
		m.writes = nil
		m.wmu.Unlock()
		for _, msg := range batch {
			if _, err := m.pw.Write(msg); err != nil {
				return // the stream is broken; read reports it
			}
		}
	}
}

// read sends the request and dispatches the stream's messages to the watches.
func (m *watchMux) read(req *http.Request) {
	c := m.c
	err := m.readStream(req)
	c.muxMu.Lock()
	m.err = err
	m.dead = true
	if c.muxes[m.ep] == m {
		delete(c.muxes, m.ep)
	}
	c.muxMu.Unlock()
	m.cancel()
	m.pw.CloseWithError(err) // unblocks a write the transport no longer reads
	close(m.broken)
}

func (m *watchMux) readStream(req *http.Request) error {
	c := m.c
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	m.ep.SetProto(resp.ProtoMajor)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return newError(wire.ParseErrorBody(resp.StatusCode, b), m.ep.URL)
	}
	lr := wire.NewLineReader(resp.Body, 4096, c.maxBody)
	for {
		line, err := lr.Next()
		if err != nil {
			return err
		}
		var a wire.Arena
		var msg wire.WatchResponse
		st, err := wire.DecodeWatchLine(line, &a, &msg)
		if err != nil {
			return malformed(m.ep.URL, err)
		}
		if st != nil {
			return newError(*st, m.ep.URL)
		}
		m.dispatch(&msg)
	}
}

// dispatch hands a message to its watch, or drops the watch if it is full.
func (m *watchMux) dispatch(msg *wire.WatchResponse) {
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
	} else {
		sub = m.subs[msg.WatchID]
	}
	if sub == nil || sub.gone {
		return
	}
	select {
	case sub.in <- *msg:
		if msg.Canceled {
			// etcd ended this watch: it stops here and sends nothing more.
			sub.gone = true
			delete(m.subs, sub.id)
		}
	default:
		m.drop(sub)
		close(sub.evicted)
		c.evictions.Add(1)
	}
}

// muxStream runs w on the multiplexed stream to ep until the stream ends, the
// watch ends, or the stream drops it for being slow.
func (w *watcher) muxStream(ep *endpoint.Endpoint) outcome {
	c := w.c
	req, err := w.request()
	if err != nil {
		return w.endOrRetry(err)
	}
	m, sub, err := c.subscribe(w, ep, &req)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return done
		}
		return w.endOrRetry(err)
	}
	defer c.unsubscribe(m, sub)
	w.token = m.token
	for {
		select {
		case msg := <-sub.in:
			if o, end := w.handle(&msg, ep); end {
				return o
			}
		case <-sub.evicted:
			// Handle what was buffered before the drop, then subscribe again.
			if o, end := w.drain(sub, ep); end {
				return o
			}
			return again
		case <-m.broken:
			if o, end := w.drain(sub, ep); end {
				return o
			}
			return w.muxBroken(ep, m.err)
		case <-w.ctx.Done():
			return done
		}
	}
}

// muxBroken decides what the end of a multiplexed stream means to a watch.
func (w *watcher) muxBroken(ep *endpoint.Endpoint, err error) outcome {
	var e *Error
	if errors.As(err, &e) {
		return w.status(ep, wire.Status{Code: e.Code, HTTPStatus: e.HTTPStatus, Message: e.Message}, w.token)
	}
	if errors.Is(err, ErrMalformedResponse) {
		return w.terminal(err)
	}
	if errors.Is(err, wire.ErrLineTooLong) {
		return w.terminal(fmt.Errorf("%w: watch on %s: %v; WithFragment splits large revisions", ErrMalformedResponse, ep.URL, err))
	}
	return w.transient(ep)
}

// drain handles the messages sub buffered before its stream went away; end
// reports that one of them ended the watch, with o the outcome.
func (w *watcher) drain(sub *muxSub, ep *endpoint.Endpoint) (o outcome, end bool) {
	for {
		select {
		case msg := <-sub.in:
			if o, end := w.handle(&msg, ep); end {
				return o, true
			}
		default:
			return o, false
		}
	}
}
