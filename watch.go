package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
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
// ErrInvalidAuthToken, ErrResponseTooLarge (a message, or its fragments
// together, over WithMaxResponseBytes), ErrMalformedResponse, an *Error; or
// nil for a normal response.
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
// A running stream that breaks, as L7 proxies cut idle streams, does not
// count against its member; one that cannot be established does. A stream
// that goes quiet without a reset (a paused member, a partition) is checked
// after WithStreamKeepalive's interval, and moves to another member when its
// own does not answer. A message over WithMaxResponseBytes ends the watch with
// ErrResponseTooLarge.
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
	ctx, w.ob = c.startCall(ctx, "Watch")
	w.ctx, w.cancel = context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, w.cancel)
	ok := c.spawn(func() {
		defer stop()
		defer w.cancel()
		defer close(w.out)
		w.run()
		c.endCall(ctx, w.ob, w.err)
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
	// evictionReset is how long a watch must stay on a shared stream for its
	// next eviction to start the resubscribe backoff afresh.
	evictionReset = 10 * time.Second
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
	nextRev      int64
	created      bool            // the Created response was delivered
	pending      []*mvccpb.Event // events of fragments not yet complete
	pendingBytes int             // the size of the lines they came in
	fails        int             // attempts since the last stream that got going
	evictions    int             // evictions from shared streams in a row
	authed       bool            // a new token was fetched for the current attempt
	token        string          // the auth token the current stream was opened with
	// running is set when the current stream's created answer came: the
	// stream is established. Its keepalive reads it.
	running atomic.Bool
	ob      *callObs // the Observer's call, nil when none
	err     error    // why the watch ended, for the Observer
}

func (w *watcher) run() {
	var prev *endpoint.Endpoint
	act := watchResume
	for w.ctx.Err() == nil {
		ep := w.pick(prev, act)
		if ep == nil {
			// No member to try: wait for one to come back.
			prev, act = nil, watchResume
			if !w.sleep(w.backoff()) {
				return
			}
			continue
		}
		w.pending, w.pendingBytes = nil, 0
		w.running.Store(false)
		if w.ob != nil {
			w.ob.attempts++
			w.ob.endpoint = ep.URL
		}
		var end watchEnd
		if w.req.WatchID == 0 && w.c.canMultiplex(w.ctx, ep) {
			end = w.muxStream(ep)
		} else {
			end = w.stream(ep)
		}
		prev, act = ep, decideWatchEnd(end)
		if !w.carryOut(act, ep, end) {
			return
		}
	}
}

// carryOut does what decideWatchEnd said about the end of the stream on ep;
// false when the watch is over.
func (w *watcher) carryOut(act watchAction, ep *endpoint.Endpoint, end watchEnd) bool {
	w.observeEnd(act, ep, end)
	switch act {
	case watchQuiet:
		return false
	case watchFinal:
		r := WatchResponse{Canceled: true, err: end.err}
		if end.last != nil {
			r = *end.last
		}
		w.deliver(r)
		return false
	case watchReauth:
		w.authed = true
		// The stale token is the stream's: a token fetched meanwhile by
		// another call is taken as it is.
		if _, err := w.c.refreshToken(w.ctx, w.token); err != nil {
			e := w.notStarted(err)
			return w.carryOut(decideWatchEnd(e), ep, e)
		}
		return true
	case watchUnshare:
		w.c.markUnshared(ep)
		return true
	case watchResubscribe:
		return w.sleep(backoff(w.evictions - 1))
	case watchFailover:
		w.c.ring.Fail(ep)
	}
	return w.sleep(w.backoff())
}

// pick returns the member for the next stream: the same one after an
// eviction, a fallback or a new token; another one, if there is one, after a
// stream broke.
func (w *watcher) pick(prev *endpoint.Endpoint, act watchAction) *endpoint.Endpoint {
	r := w.c.ring
	if prev != nil {
		switch act {
		case watchResubscribe, watchUnshare, watchReauth:
			if r.Healthy(prev) {
				return prev
			}
		case watchResume, watchFailover:
			if ep := r.Pick([]*endpoint.Endpoint{prev}); ep != nil {
				return ep
			}
		}
	}
	if ep := r.Pick(nil); ep != nil {
		return ep
	}
	return r.Recover(w.ctx, nil)
}

// backoff is the wait before the next reconnect; it grows with the attempts
// since a stream last got going.
func (w *watcher) backoff() time.Duration {
	d := backoff(w.fails)
	w.fails++
	return d
}

// backoff is the n-th step of the reconnect backoff, jittered: half to all of
// watchBackoffMin << n, at most watchBackoffMax.
func backoff(n int) time.Duration {
	d := min(watchBackoffMin<<min(max(n, 0), 10), watchBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d; false if ctx ended first.
func (w *watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// What ends a watch's stream, and what that means.

// watchEndKind is what ended a watch's stream.
type watchEndKind int

const (
	watchCut        watchEndKind = iota // the connection failed, was reset or closed
	watchCutMidLine                     // the stream ended inside a message: a cut, not garbage
	watchStatus                         // an error answer: a non-200 status, an {"error":...} line, a refused create
	watchCanceled                       // etcd canceled the watch: compaction, permission
	watchTooLarge                       // a message, or its fragments together, over WithMaxResponseBytes
	watchMalformed                      // a whole message that does not decode
	watchStalled                        // silent for WithStreamKeepalive's interval, and its member failed a probe
	watchNoCreated                      // no created answer within WithStreamKeepalive's bound
	watchEvicted                        // the shared stream dropped the watch for falling behind
	watchNoStart                        // not opened: finding the API prefix or a token failed
	watchLocal                          // the client could not build the request
)

// watchEnd describes how a watch's stream ended: the input of decideWatchEnd.
type watchEnd struct {
	how         watchEndKind
	ctxDone     bool // the watch's ctx ended, or the client was closed
	established bool // the created answer came on this stream: it was running
	shared      bool // it was the member's shared HTTP/2 stream
	code        int  // watchStatus, watchNoStart: the answer's gRPC code, -1 for none
	staleToken  bool // watchStatus: a new token would do, and none was fetched for this attempt
	memberOK    bool // watchNoCreated: the member answered a probe meanwhile

	err  error          // why, for the caller if the watch ends
	last *WatchResponse // the response that tells the caller, when it says more than err
}

// watchAction is what a watch does when its stream ends.
type watchAction int

const (
	watchQuiet       watchAction = iota // close the channel without a word: the caller ended the watch
	watchFinal                          // tell the caller why, and close the channel
	watchResume                         // reconnect from nextRev after a short backoff, to another member if any; nobody's failure
	watchFailover                       // the member failed: mark it unhealthy, reconnect elsewhere after a backoff
	watchResubscribe                    // the same member again, after a backoff that grows with each eviction
	watchUnshare                        // the same member at once, with a request of the watch's own
	watchReauth                         // fetch a new token, then reconnect at once
)

// decideWatchEnd says what the end of a watch's stream means. A running
// stream that breaks, even inside a message, is resumed and is not its
// member's failure: L7 proxies cut idle streams as a matter of course. Failing
// to establish one is the member's failure, and so is a stream that went
// silent while its member no longer answers. The client's own size limit ends
// the watch and is nobody's failure.
func decideWatchEnd(e watchEnd) watchAction {
	if e.ctxDone {
		return watchQuiet
	}
	switch e.how {
	case watchCanceled, watchTooLarge, watchMalformed, watchLocal:
		return watchFinal
	case watchStatus:
		switch {
		case e.staleToken:
			return watchReauth
		case transientCode(e.code):
			return watchFailover
		}
		return watchFinal
	case watchNoStart:
		if e.code < 0 || e.code == wire.CodeUnavailable {
			return watchResume
		}
		return watchFinal
	case watchEvicted:
		return watchResubscribe
	case watchNoCreated:
		if e.shared && e.memberOK {
			return watchUnshare
		}
		return watchFailover
	case watchStalled:
		return watchFailover
	}
	// watchCut, watchCutMidLine
	if e.established {
		return watchResume
	}
	return watchFailover
}

// transientCode reports an answer that means the member is going away, has
// no leader, or is overloaded: another attempt, possibly elsewhere, will do.
func transientCode(code int) bool {
	switch code {
	case wire.CodeUnavailable, wire.CodeDeadlineExceeded, wire.CodeCanceled, wire.CodeUnknown,
		wire.CodeInternal, wire.CodeResourceExhausted, wire.CodeAborted, wire.CodeDataLoss:
		return true
	}
	return false
}

// end describes the end of the current stream.
func (w *watcher) end(how watchEndKind, err error) watchEnd {
	return watchEnd{how: how, err: err, code: -1, ctxDone: w.ctx.Err() != nil, established: w.running.Load()}
}

// cut describes a stream that broke: ctx is the stream's, whose cause says
// whether its keepalive ended it.
func (w *watcher) cut(ctx context.Context, ep *endpoint.Endpoint, how watchEndKind, err error) watchEnd {
	end := w.end(how, err)
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStreamStalled):
		end.how, end.err = watchStalled, fmt.Errorf("%s: %w", ep.URL, cause)
	case errors.Is(cause, errNoCreated):
		end.how, end.err = watchNoCreated, fmt.Errorf("%s: %w", ep.URL, cause)
	}
	return end
}

// notStarted describes a stream that could not be opened.
func (w *watcher) notStarted(err error) watchEnd {
	end := w.end(watchNoStart, err)
	var e *Error
	if errors.As(err, &e) {
		end.code = e.Code
	}
	if errors.Is(err, ErrClosed) {
		end.ctxDone = true
	}
	return end
}

// status describes an error answer of etcd, before or inside the stream.
func (w *watcher) status(e *Error) watchEnd {
	end := w.end(watchStatus, e)
	end.code = e.Code
	end.staleToken = w.c.auth != nil && e.needsNewToken() && !w.authed
	return end
}

// tooLarge describes a message over the client's limit.
func (w *watcher) tooLarge(ep *endpoint.Endpoint) watchEnd {
	return w.end(watchTooLarge, tooLargeError(ep, w.c.maxBody, "a watch message"))
}

func tooLargeError(ep *endpoint.Endpoint, limit int, what string) error {
	return fmt.Errorf("%w: %s from %s is over the limit of %d bytes (WithMaxResponseBytes); WithFragment splits large revisions",
		ErrResponseTooLarge, what, ep.URL, limit)
}

// stream runs one watch stream on ep, a request of its own, until it ends.
func (w *watcher) stream(ep *endpoint.Endpoint) watchEnd {
	c := w.c
	prefix, err := c.apiPrefix(w.ctx)
	if err != nil {
		return w.notStarted(err)
	}
	req, err := w.request()
	if err != nil {
		return w.notStarted(err)
	}
	hdrs := c.headers.Load()
	w.token = hdrs.token
	ctx, kill := context.WithCancelCause(w.ctx)
	act := newActivity()
	guarded := make(chan struct{})
	go func() {
		defer close(guarded)
		c.keepalive(ctx, ep, act, &w.running, kill, nil)
	}()
	defer func() {
		kill(nil)
		<-guarded
	}()
	// The whole body is written at once: over HTTP/1.1 the gateway may drop
	// what a client sends after the response has started.
	r := &rpc{path: wire.PathWatch, body: wire.AppendWatchCreate(nil, &req), idempotent: true, leader: true}
	hreq, err := c.newRequest(ctx, ep, prefix+wire.PathWatch, r, hdrs)
	if err != nil {
		return w.end(watchLocal, err)
	}
	resp, err := c.transport.RoundTrip(hreq)
	if err != nil {
		return w.cut(ctx, ep, watchCut, err)
	}
	defer resp.Body.Close()
	ep.SetProto(resp.ProtoMajor)
	act.touch()
	body := watchedBody{resp.Body, act}
	if resp.StatusCode != http.StatusOK {
		b, err := io.ReadAll(io.LimitReader(body, 64<<10))
		if err != nil {
			return w.cut(ctx, ep, watchCut, err)
		}
		return w.status(newError(wire.ParseErrorBody(resp.StatusCode, b), ep.URL))
	}
	lr := wire.NewLineReader(body, 4096, c.maxBody)
	// One Arena value for the stream, emptied for each message: each message
	// still gets chunks of its own (sized by it), without allocating the
	// Arena itself every time.
	var a wire.Arena
	for {
		line, err := lr.Next()
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				return w.tooLarge(ep)
			}
			return w.cut(ctx, ep, watchCut, err)
		}
		a = wire.Arena{}
		var m wire.WatchResponse
		st, err := wire.DecodeWatchLine(line, &a, &m)
		if err != nil {
			if lr.Tail() {
				return w.cut(ctx, ep, watchCutMidLine, err)
			}
			return w.end(watchMalformed, malformed(ep.URL, err))
		}
		if st != nil {
			return w.status(newError(*st, ep.URL))
		}
		if end, over := w.handle(&m, len(line), ep); over {
			return end
		}
	}
}

// handle applies one message of size bytes to the watch; over reports that
// it ended the stream, as end says.
func (w *watcher) handle(m *wire.WatchResponse, size int, ep *endpoint.Endpoint) (end watchEnd, over bool) {
	switch {
	case m.Created && m.Canceled:
		return w.onCreateRefused(m, ep), true
	case m.Created:
		return w.onCreated(m)
	case m.Canceled:
		return w.onCanceled(m, ep), true
	case m.Fragment:
		return w.onFragment(m, size, ep)
	case len(m.Events) == 0 && len(w.pending) == 0:
		return w.onProgress(m)
	}
	return w.onEvents(m, size, ep)
}

// onCreateRefused handles etcd's refusal to create the watch.
func (w *watcher) onCreateRefused(m *wire.WatchResponse, ep *endpoint.Endpoint) watchEnd {
	e := newError(wire.ParseCancelReason(m.CancelReason), ep.URL)
	end := w.status(e)
	end.last = &WatchResponse{Header: ResponseHeader(m.Header), Created: true, Canceled: true, CancelReason: m.CancelReason, err: e}
	return end
}

// onCreated handles the created answer: the stream is established.
func (w *watcher) onCreated(m *wire.WatchResponse) (watchEnd, bool) {
	w.fails, w.authed = 0, false
	w.running.Store(true)
	if w.nextRev == 0 {
		// Watching from now: resume from the revision etcd created the watch
		// at. It is inclusive on purpose: a write racing with the creation
		// can land at that revision, and redelivering a write that happened
		// just before the watch is better than losing one just after.
		w.nextRev = m.Header.Revision
	}
	if w.created {
		return watchEnd{}, false // a reconnect: the caller saw Created once
	}
	w.created = true
	return w.pass(WatchResponse{Header: ResponseHeader(m.Header), Created: true})
}

// onCanceled handles etcd's end of the watch.
func (w *watcher) onCanceled(m *wire.WatchResponse, ep *endpoint.Endpoint) watchEnd {
	r := WatchResponse{Header: ResponseHeader(m.Header), Canceled: true, CancelReason: m.CancelReason, CompactRevision: m.CompactRevision}
	switch {
	case m.CompactRevision != 0:
		r.err = &Error{Code: wire.CodeOutOfRange, Message: fmt.Sprintf("etcdserver: mvcc: required revision has been compacted (compact revision %d)", m.CompactRevision), Endpoint: ep.URL, kind: wire.KindCompacted}
	case m.CancelReason != "":
		r.err = newError(wire.ParseCancelReason(m.CancelReason), ep.URL)
	default:
		r.err = &Error{Code: wire.CodeCanceled, Message: "watch canceled by etcd", Endpoint: ep.URL, kind: wire.KindCanceled}
	}
	end := w.end(watchCanceled, r.err)
	end.last = &r
	return end
}

// onFragment keeps the events of a fragment until the last one comes.
func (w *watcher) onFragment(m *wire.WatchResponse, size int, ep *endpoint.Endpoint) (watchEnd, bool) {
	w.pending = append(w.pending, m.Events...)
	w.pendingBytes += size
	if w.pendingBytes > w.c.maxBody {
		return w.end(watchTooLarge, tooLargeError(ep, w.c.maxBody, "a watch message's fragments")), true
	}
	return watchEnd{}, false
}

// onProgress handles a progress notification: everything up to its revision
// was sent.
func (w *watcher) onProgress(m *wire.WatchResponse) (watchEnd, bool) {
	w.nextRev = max(w.nextRev, m.Header.Revision+1)
	w.observeProgress(m.Header.Revision, 0)
	return w.pass(WatchResponse{Header: ResponseHeader(m.Header)})
}

// observeProgress tells the observer, if any, how far the watch is.
func (w *watcher) observeProgress(header int64, events int) {
	if o := w.c.cfg.observer; o != nil && o.WatchProgress != nil {
		rev := w.nextRev - 1
		o.WatchProgress(w.ctx, WatchProgressInfo{Revision: rev, Lag: max(header-rev, 0), Events: events})
	}
}

// onEvents delivers a batch of events, joined to its fragments, without those
// delivered already.
func (w *watcher) onEvents(m *wire.WatchResponse, size int, ep *endpoint.Endpoint) (watchEnd, bool) {
	events := m.Events
	if len(w.pending) > 0 {
		if w.pendingBytes+size > w.c.maxBody {
			return w.end(watchTooLarge, tooLargeError(ep, w.c.maxBody, "a watch message's fragments")), true
		}
		events = append(w.pending, events...)
		w.pending, w.pendingBytes = nil, 0
	}
	// After a reconnect, etcd may send again what was delivered already.
	skip := 0
	for skip < len(events) && events[skip].Kv != nil && events[skip].Kv.ModRevision < w.nextRev {
		skip++
	}
	events = events[skip:]
	if len(events) == 0 {
		return watchEnd{}, false
	}
	for _, ev := range events {
		w.c.strip(ev.Kv)
		w.c.strip(ev.PrevKv)
	}
	if last := events[len(events)-1].Kv; last != nil {
		w.nextRev = max(w.nextRev, last.ModRevision+1)
	}
	w.observeProgress(m.Header.Revision, len(events))
	return w.pass(WatchResponse{Header: ResponseHeader(m.Header), Events: events})
}

// pass delivers r; the stream is over if ctx ended first.
func (w *watcher) pass(r WatchResponse) (watchEnd, bool) {
	if !w.deliver(r) {
		return watchEnd{ctxDone: true}, true
	}
	return watchEnd{}, false
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

// Keeping a stream alive: a member that is paused, or behind a partition
// that drops packets, sends no reset; its streams just go quiet.

// Why a stream's keepalive ended it.
var (
	errStreamStalled = errors.New("watch stream silent, and its member did not answer a probe")
	errNoCreated     = errors.New("watch stream not confirmed in time")
)

// activity records when a stream last read a byte.
type activity struct {
	base time.Time
	last atomic.Int64 // nanoseconds after base
}

func newActivity() *activity {
	return &activity{base: time.Now()}
}

func (a *activity) touch() { a.last.Store(int64(time.Since(a.base))) }

// quiet is how long it has been since the last byte.
func (a *activity) quiet() time.Duration { return time.Since(a.base) - time.Duration(a.last.Load()) }

// watchedBody is a stream's body that records its reads.
type watchedBody struct {
	io.ReadCloser
	act *activity
}

func (b watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.act.touch()
	}
	return n, err
}

// keepalive guards a stream against silence until ctx ends. When nothing was
// read for the keepalive interval it probes the member, which has the
// keepalive timeout to answer: a healthy member that has nothing to say keeps
// its stream; one that does not answer has the stream ended with
// errStreamStalled. A stream not established (established not set) within
// the interval and the timeout together ends with errNoCreated; established
// is nil for a shared stream, whose watches each wait for their own answer.
func (c *Client) keepalive(ctx context.Context, ep *endpoint.Endpoint, act *activity, established *atomic.Bool, kill context.CancelCauseFunc, ping func(context.Context) error) {
	idle, bound := c.cfg.streamIdle, c.cfg.streamTimeout
	start := time.Now()
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if wait := idle - act.quiet(); wait > 0 {
			t.Reset(wait)
			continue
		}
		if established != nil && !established.Load() && time.Since(start) >= idle+bound {
			kill(errNoCreated)
			return
		}
		if ping != nil {
			// The stream's own connection must answer too: a flow that a
			// NAT or load balancer forgot leaves the member healthy.
			pctx, cancel := context.WithTimeout(ctx, bound)
			err := ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				kill(errStreamStalled)
				return
			}
		}
		ok := c.probeWithin(ctx, ep)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			kill(errStreamStalled)
			return
		}
		act.touch() // the member answered: quiet, not gone
		t.Reset(idle)
	}
}

// probeWithin probes ep, with the keepalive timeout to answer. The quiet
// streams to one member share a probe in flight, and one that found it
// healthy within the last half interval, so that N idle watches cost one
// probe, not N.
func (c *Client) probeWithin(ctx context.Context, ep *endpoint.Endpoint) bool {
	if time.Since(time.Unix(0, ep.HealthyAt.Load())) < c.cfg.streamIdle/2 {
		return true
	}
	return ep.SharedProbe(ctx, func() bool {
		// Bounded by the keepalive timeout, not by the ctx of the one
		// stream that runs it for all.
		pctx, cancel := context.WithTimeout(c.ctx, c.cfg.streamTimeout)
		defer cancel()
		return c.probe(pctx, ep)
	})
}
