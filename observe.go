package etcdgw

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
)

// Observer is a set of hooks for metrics and tracing, given to WithObserver.
// Every field may be nil, and fields are only ever added, so that a literal
// naming the fields it sets keeps compiling. Hooks run on the goroutine of
// the call or of the client's background work: they must be quick, safe for
// concurrent use, and must not call the client.
//
// One CallStart and one CallDone frame each gateway RPC: each ReadDir page is
// a "Range"; Set with WithTTL is "LeaseGrant" then "Put"; each lease renewal
// is a "LeaseKeepAlive"; a token fetch is an "Authenticate"; a Watch is one
// call from its first connect until its channel closes.
type Observer struct {
	// CallStart is called as a call starts; the context it returns is
	// carried through the call, and is the context of every attempt's HTTP
	// request (so that a span it starts parents those of WithTransport's
	// wrapper) and of CallDone. Returning ctx itself is fine.
	CallStart func(ctx context.Context, call CallInfo) context.Context
	// CallDone is called once the call has its result.
	CallDone func(ctx context.Context, call CallInfo, res CallResult)
	// Attempt is called after each attempt of a unary call on a member.
	Attempt func(ctx context.Context, call CallInfo, a AttemptInfo)
	// EndpointHealth is called when an endpoint is marked unhealthy (after
	// WithHealthCheck's failures) and when it is healthy again.
	EndpointHealth func(endpoint string, healthy bool)
	// WatchReconnect is called when a watch's stream ended and the watch
	// resumes, on the same member or another.
	WatchReconnect func(ctx context.Context, w WatchReconnectInfo)
	// TokenRefresh is called after each fetch of an auth token (WithAuth),
	// with its error, nil when a token came.
	TokenRefresh func(ctx context.Context, err error)
	// WatchProgress is called as a watch delivers a batch of events or a
	// progress notification, with how far it is behind the store.
	WatchProgress func(ctx context.Context, w WatchProgressInfo)
	// KeepAlive is called after each renewal of a KeepAlive loop, with its
	// outcome.
	KeepAlive func(ctx context.Context, k KeepAliveInfo)
}

// WatchProgressInfo is a watch's progress, given to Observer.WatchProgress.
type WatchProgressInfo struct {
	Revision int64 // the last revision delivered
	// Lag is how many revisions the store was ahead of Revision when the
	// member sent the response (its header's revision minus Revision): 0
	// for a watch that keeps up.
	Lag    int64
	Events int // events in the response; 0 for a progress notification
}

// KeepAliveInfo is one renewal of a KeepAlive loop, given to
// Observer.KeepAlive.
type KeepAliveInfo struct {
	ID       LeaseID
	TTL      int64 // seconds granted; 0 when the renewal failed
	Err      error // why it failed; nil on success
	Duration time.Duration
}

// CallInfo describes a call to an Observer.
type CallInfo struct {
	// Method is the gateway RPC: "Range", "Put", "DeleteRange", "Txn",
	// "Compact", "Watch", "LeaseGrant", "LeaseRevoke", "LeaseKeepAlive",
	// "LeaseTimeToLive", "LeaseLeases", "Authenticate", "Version", ... A
	// short list, fit for a metric label.
	Method string
}

// CallResult is the outcome of a call, given to Observer.CallDone.
type CallResult struct {
	Err      error
	Attempts int           // attempts made on members; 0 if none was sent
	Endpoint string        // the member of the last attempt, normalized as scheme://host:port[/base]; "" if none
	Duration time.Duration // from CallStart to CallDone
}

// AttemptInfo is one attempt of a unary call, given to Observer.Attempt.
type AttemptInfo struct {
	Attempt  int    // 1 for the first
	Endpoint string // the member tried, normalized as in CallResult
	// Status is the HTTP status of the answer, 0 when none came (Err then
	// says why).
	Status   int
	Err      error
	Duration time.Duration
}

// WatchReconnectInfo describes a watch that resumes, given to
// Observer.WatchReconnect.
type WatchReconnectInfo struct {
	Endpoint string // the member whose stream ended
	// Revision is the revision the watch resumes from: one past the last
	// it delivered.
	Revision int64
	Err      error // why the stream ended
}

// callObs is what an observed call carries: nil when no observer is set.
type callObs struct {
	call     CallInfo
	start    time.Time
	attempts int
	endpoint string
}

// startCall calls the observer's CallStart; nil when the call is not
// observed, at no cost.
func (c *Client) startCall(ctx context.Context, method string) (context.Context, *callObs) {
	o := c.cfg.observer
	if o == nil || (o.CallStart == nil && o.CallDone == nil && o.Attempt == nil) {
		return ctx, nil
	}
	ob := &callObs{call: CallInfo{Method: method}, start: time.Now()}
	if o.CallStart != nil {
		if nctx := o.CallStart(ctx, ob.call); nctx != nil {
			ctx = nctx
		}
	}
	return ctx, ob
}

// attempt records one attempt of an observed call.
func (c *Client) observeAttempt(ctx context.Context, ob *callObs, ep string, status int, err error, took time.Duration) {
	ob.attempts++
	ob.endpoint = ep
	if f := c.cfg.observer.Attempt; f != nil {
		f(ctx, ob.call, AttemptInfo{Attempt: ob.attempts, Endpoint: ep, Status: status, Err: err, Duration: took})
	}
}

// endCall calls the observer's CallDone.
func (c *Client) endCall(ctx context.Context, ob *callObs, err error) {
	if ob == nil {
		return
	}
	if f := c.cfg.observer.CallDone; f != nil {
		f(ctx, ob.call, CallResult{Err: err, Attempts: ob.attempts, Endpoint: ob.endpoint, Duration: time.Since(ob.start)})
	}
}

// logging reports whether records at level are wanted.
func (c *Client) logging(ctx context.Context, level slog.Level) bool {
	return c.cfg.logger != nil && c.cfg.logger.Enabled(ctx, level)
}

// log writes a record with attrs, if WithLogger wants it. Attrs must never
// hold a token, a password or a value.
func (c *Client) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if c.cfg.logger == nil {
		return
	}
	c.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
}

// endpointHealth reports an endpoint's change of health to the logger and
// the observer.
func (c *Client) endpointHealth(url string, healthy bool, cause error) {
	ctx := context.Background()
	if healthy {
		c.log(ctx, slog.LevelInfo, "etcdgw: endpoint healthy again", slog.String("endpoint", url))
	} else if c.logging(ctx, slog.LevelWarn) {
		attrs := []slog.Attr{slog.String("endpoint", url), slog.Duration("fail_timeout", c.cfg.failTimeout)}
		if cause != nil {
			attrs = append(attrs, slog.String("error", cause.Error()))
		}
		c.log(ctx, slog.LevelWarn, "etcdgw: endpoint marked unhealthy", attrs...)
	}
	if o := c.cfg.observer; o != nil && o.EndpointHealth != nil {
		o.EndpointHealth(url, healthy)
	}
}

// tokenRefreshed reports a token fetch to the logger and the observer; never
// the token itself.
func (c *Client) tokenRefreshed(ctx context.Context, refresh bool, err error) {
	if c.logging(ctx, slog.LevelInfo) {
		attrs := []slog.Attr{slog.String("user", c.cfg.username), slog.Bool("refresh", refresh)}
		level := slog.LevelInfo
		if err != nil {
			level = slog.LevelWarn
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		c.log(ctx, level, "etcdgw: auth token fetched", attrs...)
	}
	if o := c.cfg.observer; o != nil && o.TokenRefresh != nil {
		o.TokenRefresh(ctx, err)
	}
}

// observeEnd reports the end of a watch's stream, and what the watch does
// about it, to the logger and the observer.
func (w *watcher) observeEnd(act watchAction, ep *endpoint.Endpoint, end watchEnd) {
	c := w.c
	switch act {
	case watchQuiet:
	case watchFinal:
		w.err = end.err
		if errors.Is(end.err, ErrCompacted) {
			var compact int64
			if end.last != nil {
				compact = end.last.CompactRevision
			}
			c.log(w.ctx, slog.LevelWarn, "etcdgw: watch revision compacted",
				slog.String("endpoint", ep.URL), slog.Int64("revision", w.nextRev), slog.Int64("compact_revision", compact))
		}
	default:
		if c.logging(w.ctx, slog.LevelInfo) {
			attrs := []slog.Attr{slog.String("endpoint", ep.URL), slog.Int64("revision", w.nextRev),
				slog.String("reason", watchActionNames[act])}
			if end.err != nil {
				attrs = append(attrs, slog.String("error", end.err.Error()))
			}
			c.log(w.ctx, slog.LevelInfo, "etcdgw: watch reconnecting", attrs...)
		}
		if o := c.cfg.observer; o != nil && o.WatchReconnect != nil {
			o.WatchReconnect(w.ctx, WatchReconnectInfo{Endpoint: ep.URL, Revision: w.nextRev, Err: end.err})
		}
	}
}

var watchActionNames = [...]string{
	watchQuiet: "quiet", watchFinal: "final", watchResume: "stream ended", watchFailover: "member failed",
	watchResubscribe: "evicted from a shared stream", watchUnshare: "shared stream did not start",
	watchReauth: "token refused",
}
