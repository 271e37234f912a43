package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// WatchChan delivers the responses of a watch. It is closed when the watch
// ends: its ctx ended, the client was closed, or etcd ended it for good (the
// last response then says why in Err).
type WatchChan <-chan WatchResponse

// WatchResponse is one message of a watch: the creation, a batch of events, a
// progress notification, or the cancellation.
type WatchResponse struct {
	Header ResponseHeader
	// Events are the changes, in revision order: keys without the client's key
	// prefix, values as stored (decode them with Client.Decode).
	Events []*mvccpb.Event
	// CompactRevision is set when the watch asked for a revision that was
	// compacted: the watch is canceled and Err is ErrCompacted.
	CompactRevision int64
	// Created marks the first response of a watch, once per Watch call.
	Created bool
	// Canceled marks the last response of a watch that etcd ended.
	Canceled bool
	// CancelReason is etcd's reason for the cancellation, if it gave one.
	CancelReason string

	err error
}

// Err returns why the watch ended: ErrCompacted, ErrPermissionDenied,
// ErrInvalidAuthToken, ErrMalformedResponse, an *Error; or nil for a normal
// response.
func (r *WatchResponse) Err() error { return r.err }

// IsProgressNotify reports a progress notification: no events, and a header
// revision up to which the watch has seen everything.
func (r *WatchResponse) IsProgressNotify() bool {
	return len(r.Events) == 0 && !r.Created && !r.Canceled && r.CompactRevision == 0 && r.Header.Revision != 0
}

// Watch watches key, or with WithPrefix, WithRange or WithFromKey a range of
// keys, and returns the channel of its responses: first one with Created, then
// each batch of events and each progress notification as etcd sends them.
//
// The watch starts at WithRev, or now. When its stream breaks (the member
// restarts or dies, the connection is cut, the member loses its leader) it
// reconnects with backoff, to another endpoint when there are several, from
// the revision after the last one delivered: no event is lost or delivered
// twice. If that revision was compacted meanwhile, the last response has
// CompactRevision set and Err ErrCompacted, and the channel closes: read the
// keys again and watch from the read revision + 1.
//
// Cancelling ctx ends the watch and closes its connection. The channel must be
// read: a caller that stops reading stops the watch's stream (the client
// buffers a few responses, never more), not the other watches.
// Options: WithRev, WithPrefix, WithRange, WithFromKey, WithPrevKV,
// WithProgressNotify, WithFilterPut, WithFilterDelete, WithFragment,
// WithWatchID. A bad option gives one response whose Err wraps
// ErrInvalidOption, and the channel closes.
func (c *Client) Watch(ctx context.Context, key string, opts ...OpOption) WatchChan {
	op := Op{kind: opGet, key: key}
	if err := op.applyOpts("Watch", watchOpts, opts); err != nil {
		return failedWatch(err)
	}
	return c.watch(ctx, "Watch", &op)
}

// WatchDir watches every key that starts with dir; the empty dir watches every
// key (under the key prefix). It is Watch with WithPrefix; see Watch.
func (c *Client) WatchDir(ctx context.Context, dir string, opts ...OpOption) WatchChan {
	op := Op{kind: opGet, key: dir}
	if err := op.applyOpts("WatchDir", watchDirOpts, opts); err != nil {
		return failedWatch(err)
	}
	op.opts |= optPrefix
	return c.watch(ctx, "WatchDir", &op)
}

// failedWatch is the channel of a watch that cannot start.
func failedWatch(err error) WatchChan {
	ch := make(chan WatchResponse, 1)
	ch <- WatchResponse{Canceled: true, err: err}
	close(ch)
	return ch
}

func (c *Client) watch(ctx context.Context, what string, op *Op) WatchChan {
	key, end, err := c.keyRange(what, op)
	if err != nil {
		return failedWatch(err)
	}
	w := &watcher{
		c:   c,
		out: make(chan WatchResponse, c.cfg.watchBuffer),
		req: wire.WatchCreateRequest{
			Key:            key,
			RangeEnd:       end,
			StartRevision:  op.rev,
			ProgressNotify: op.opts&optProgressNotify != 0,
			FilterPut:      op.opts&optFilterPut != 0,
			FilterDelete:   op.opts&optFilterDelete != 0,
			PrevKV:         op.opts&optPrevKV != 0,
			Fragment:       op.opts&optFragment != 0,
			WatchID:        op.watchID,
		},
		nextRev: op.rev,
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, w.cancel)
	ok := c.spawn(func() {
		defer stop()
		defer w.cancel()
		defer close(w.out)
		w.run()
	})
	if !ok {
		stop()
		w.cancel()
		return failedWatch(ErrClosed)
	}
	return w.out
}

// Backoff between the attempts of a watch to reconnect.
const (
	watchBackoffMin = 50 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

// watcher is one Watch call: it keeps the resume point and the state that
// makes a broken stream invisible to the caller.
type watcher struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	out    chan WatchResponse
	req    wire.WatchCreateRequest

	// nextRev is the revision the watch resumes from: after the last event
	// delivered, or after the last progress notification. 0 until known.
	nextRev int64
	created bool            // the Created response was delivered
	pending []*mvccpb.Event // events of fragments not yet complete
	fails   int             // attempts since the last stream that got going
	authed  bool            // a new token was fetched for the current attempt
	token   string          // the auth token the current stream was opened with
}

// outcome is what a stream's end means to the watch.
type outcome int

const (
	retry outcome = iota // reconnect, after a backoff
	done                 // the watch is over
	again                // resubscribe at once: the multiplexed stream dropped this watch for being slow
)

func (w *watcher) run() {
	for w.ctx.Err() == nil {
		ep := w.c.ring.Pick(nil)
		if ep == nil {
			ep = w.c.ring.Recover(w.ctx, nil)
		}
		o := retry
		if ep != nil {
			w.pending = nil
			if w.c.canMultiplex(w.ctx, ep) && w.req.WatchID == 0 {
				o = w.muxStream(ep)
			} else {
				o = w.stream(ep)
			}
		}
		switch o {
		case done:
			return
		case retry:
			if !w.sleep() {
				return
			}
		}
	}
}

// sleep waits out the backoff before the next attempt; false if ctx ended.
func (w *watcher) sleep() bool {
	d := watchBackoffMin << min(w.fails, 10)
	d = min(d, watchBackoffMax)
	d = d/2 + rand.N(d/2+1) // jitter: half to all of the step
	w.fails++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// stream runs one watch stream on ep until it ends.
func (w *watcher) stream(ep *endpoint.Endpoint) outcome {
	c := w.c
	prefix, err := c.apiPrefix(w.ctx)
	if err != nil {
		return w.endOrRetry(err)
	}
	req, err := w.request()
	if err != nil {
		return w.endOrRetry(err)
	}
	hdrs := c.headers.Load()
	w.token = hdrs.token
	// The whole body is written at once: over HTTP/1.1 the gateway may drop
	// what a client sends after the response has started.
	r := &rpc{path: wire.PathWatch, body: wire.AppendWatchCreate(nil, &req), idempotent: true, leader: true}
	hreq, err := c.newRequest(w.ctx, ep, prefix+wire.PathWatch, r, hdrs)
	if err != nil {
		return w.terminal(err)
	}
	resp, err := c.transport.RoundTrip(hreq)
	if err != nil {
		return w.transient(ep)
	}
	defer resp.Body.Close()
	ep.SetProto(resp.ProtoMajor)
	if resp.StatusCode != http.StatusOK {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if rerr != nil && w.ctx.Err() == nil {
			return w.transient(ep)
		}
		st := wire.ParseErrorBody(resp.StatusCode, b)
		return w.status(ep, st, hdrs.token)
	}
	lr := wire.NewLineReader(resp.Body, 4096, c.maxBody)
	// One Arena value for the stream, emptied for each message: each message
	// still gets chunks of its own (sized by it), without allocating the
	// Arena itself every time.
	var a wire.Arena
	for {
		line, err := lr.Next()
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				return w.terminal(fmt.Errorf("%w: watch on %s: %v; WithFragment splits large revisions", ErrMalformedResponse, ep.URL, err))
			}
			return w.transient(ep)
		}
		a = wire.Arena{}
		var m wire.WatchResponse
		st, err := wire.DecodeWatchLine(line, &a, &m)
		if err != nil {
			if lr.Tail() {
				return w.transient(ep) // cut in the middle of a message
			}
			return w.terminal(malformed(ep.URL, err))
		}
		if st != nil {
			return w.status(ep, *st, hdrs.token)
		}
		if o, end := w.handle(&m, ep); end {
			return o
		}
	}
}

// handle applies one message of the stream to the watch; end reports that the
// stream is over, with its outcome.
func (w *watcher) handle(m *wire.WatchResponse, ep *endpoint.Endpoint) (o outcome, end bool) {
	hdr := ResponseHeader(m.Header)
	if m.Created {
		if m.Canceled {
			st := wire.ParseCancelReason(m.CancelReason)
			e := newError(st, ep.URL)
			if w.c.auth != nil && e.needsNewToken() && !w.authed {
				w.authed = true
				// The stale token is the stream's: a token fetched meanwhile by
				// another call is taken as it is.
				if _, err := w.c.refreshToken(w.ctx, w.token); err != nil {
					return w.endOrRetry(err), true
				}
				return retry, true
			}
			w.deliver(WatchResponse{Header: hdr, Created: true, Canceled: true, CancelReason: m.CancelReason, err: e})
			return done, true
		}
		w.fails, w.authed = 0, false
		if w.nextRev == 0 {
			// Watching from now: resume from the revision etcd created the watch
			// at. It is inclusive on purpose: a write racing with the creation
			// can land at that revision, and redelivering a write that happened
			// just before the watch is better than losing one just after.
			w.nextRev = m.Header.Revision
		}
		if !w.created {
			w.created = true
			if !w.deliver(WatchResponse{Header: hdr, Created: true}) {
				return done, true
			}
		}
		return retry, false
	}
	if m.Canceled {
		r := WatchResponse{Header: hdr, Canceled: true, CancelReason: m.CancelReason, CompactRevision: m.CompactRevision}
		switch {
		case m.CompactRevision != 0:
			r.err = &Error{Code: wire.CodeOutOfRange, Message: fmt.Sprintf("etcdserver: mvcc: required revision has been compacted (compact revision %d)", m.CompactRevision), Endpoint: ep.URL, kind: wire.KindCompacted}
		case m.CancelReason != "":
			r.err = newError(wire.ParseCancelReason(m.CancelReason), ep.URL)
		default:
			r.err = &Error{Code: wire.CodeCanceled, Message: "watch canceled by etcd", Endpoint: ep.URL, kind: wire.KindCanceled}
		}
		w.deliver(r)
		return done, true
	}
	if m.Fragment {
		w.pending = append(w.pending, m.Events...)
		return retry, false
	}
	events := m.Events
	if len(w.pending) > 0 {
		events = append(w.pending, events...)
		w.pending = nil
	} else if len(events) == 0 {
		// A progress notification: everything up to its revision was sent.
		w.nextRev = max(w.nextRev, m.Header.Revision+1)
		if !w.deliver(WatchResponse{Header: hdr}) {
			return done, true
		}
		return retry, false
	}
	// After a reconnect, etcd may send again what was delivered already.
	skip := 0
	for skip < len(events) && events[skip].Kv != nil && events[skip].Kv.ModRevision < w.nextRev {
		skip++
	}
	events = events[skip:]
	if len(events) == 0 {
		return retry, false
	}
	for _, ev := range events {
		w.c.strip(ev.Kv)
		w.c.strip(ev.PrevKv)
	}
	if last := events[len(events)-1].Kv; last != nil {
		w.nextRev = max(w.nextRev, last.ModRevision+1)
	}
	if !w.deliver(WatchResponse{Header: hdr, Events: events}) {
		return done, true
	}
	return retry, false
}

// deliver hands a response to the caller; false if ctx ended first.
func (w *watcher) deliver(r WatchResponse) bool {
	select {
	case w.out <- r:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// status handles an error answer of etcd, before or inside the stream.
func (w *watcher) status(ep *endpoint.Endpoint, st wire.Status, token string) outcome {
	e := newError(st, ep.URL)
	switch {
	case w.ctx.Err() != nil:
		return done
	case w.c.auth != nil && e.needsNewToken() && !w.authed:
		w.authed = true
		if _, err := w.c.refreshToken(w.ctx, token); err != nil {
			return w.endOrRetry(err)
		}
		return retry
	}
	switch e.Code {
	case wire.CodeUnavailable, wire.CodeDeadlineExceeded, wire.CodeCanceled, wire.CodeUnknown,
		wire.CodeInternal, wire.CodeResourceExhausted, wire.CodeAborted, wire.CodeDataLoss:
		// The member is going away, has no leader, or is overloaded: another
		// attempt, possibly elsewhere, will do.
		w.pending = nil
		w.c.ring.Fail(ep)
		return retry
	}
	return w.terminal(e)
}

// transient handles a stream that broke without the caller asking: the
// member stopped, died, or the connection was cut. That is a failure of the
// endpoint; a watch whose ctx ended is not.
func (w *watcher) transient(ep *endpoint.Endpoint) outcome {
	if w.ctx.Err() != nil {
		return done
	}
	w.pending = nil // fragments of a message cut short are sent again
	w.c.ring.Fail(ep)
	return retry
}

// endOrRetry ends the watch with err unless err is one a later attempt can
// overcome.
func (w *watcher) endOrRetry(err error) outcome {
	if w.ctx.Err() != nil {
		return done
	}
	var e *Error
	if errors.As(err, &e) && e.Code != wire.CodeUnavailable {
		return w.terminal(err)
	}
	return retry
}

// terminal ends the watch, telling the caller why.
func (w *watcher) terminal(err error) outcome {
	if w.ctx.Err() == nil {
		w.deliver(WatchResponse{Canceled: true, err: err})
	}
	return done
}

// request returns the create request of the next stream: it starts after the
// last delivered revision. With auth on it first makes sure a token is at
// hand, so that the stream is not opened only to fail for want of one.
func (w *watcher) request() (wire.WatchCreateRequest, error) {
	if w.c.auth != nil {
		if _, err := w.c.token(w.ctx); err != nil {
			return wire.WatchCreateRequest{}, err
		}
	}
	req := w.req
	if w.nextRev > 0 {
		req.StartRevision = w.nextRev
	}
	return req, nil
}
