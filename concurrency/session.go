package concurrency

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/etcdgw/etcdgw"
)

// defaultSessionTTL is the TTL in seconds of a session's lease, as clientv3's.
const defaultSessionTTL = 60

var (
	// ErrSessionExpired is the cause of a session that ended because its
	// lease is gone (revoked, expired in etcd) or was not renewed within its
	// TTL by the client's own clock; Lock and Campaign return it when their
	// session ends while they wait.
	ErrSessionExpired = errors.New("etcdgw: session expired")
	// ErrSessionClosed is the cause of a session ended by Close or Orphan, or
	// by the end of the context given to WithContext.
	ErrSessionClosed = errors.New("etcdgw: session closed")
)

// SessionOption configures NewSession.
type SessionOption func(*sessionOptions)

type sessionOptions struct {
	ttl   int
	lease etcdgw.LeaseID
	ctx   context.Context
}

// WithTTL sets the TTL in seconds of the lease a session grants; 60 by
// default. etcd raises a TTL below its minimum. A value <= 0 keeps the
// default.
func WithTTL(seconds int) SessionOption {
	return func(o *sessionOptions) {
		if seconds > 0 {
			o.ttl = seconds
		}
	}
}

// WithLease makes the session keep an existing lease alive instead of
// granting one. Close revokes it all the same.
func WithLease(id etcdgw.LeaseID) SessionOption {
	return func(o *sessionOptions) { o.lease = id }
}

// WithContext bounds the session's life: when ctx ends, the session stops
// renewing its lease and ends (the lease is not revoked). Its values are the
// values of Session.Ctx.
func WithContext(ctx context.Context) SessionOption {
	return func(o *sessionOptions) {
		if ctx != nil {
			o.ctx = ctx
		}
	}
}

// Session is a lease kept alive in the background, the ground that the locks
// and elections of this package stand on: their keys are attached to it and
// disappear with it. Its methods are safe for concurrent use.
//
// A session ends, and Done closes, when it is closed or orphaned, when the
// context of WithContext ends, when its lease is gone (revoked, or expired in
// etcd), and at the latest when the lease may have expired by the client's own
// clock: the send time of the last confirmed renewal plus the TTL that renewal
// returned. A session that could not reach etcd for a whole TTL has therefore
// ended before etcd could give its locks to someone else, as far as the two
// clocks run at the same rate.
type Session struct {
	c     *etcdgw.Client
	id    etcdgw.LeaseID
	opts  sessionOptions
	ctx   context.Context
	end   context.CancelCauseFunc
	stop  context.CancelFunc // stops the KeepAlive loop
	ended chan struct{}      // closed when the session's goroutine has returned

	mu     sync.Mutex
	closed bool
}

// NewSession grants a lease (or takes the one of WithLease), renews it once,
// and keeps it alive in the background. Errors: those of Grant and
// KeepAliveOnce, etcdgw.ErrLeaseNotFound for a WithLease lease that is gone.
func NewSession(c *etcdgw.Client, opts ...SessionOption) (*Session, error) {
	o := sessionOptions{ttl: defaultSessionTTL, ctx: context.Background()}
	for _, opt := range opts {
		opt(&o)
	}
	id := o.lease
	if id == 0 {
		r, err := c.Grant(o.ctx, int64(o.ttl))
		if err != nil {
			return nil, err
		}
		id = r.ID
	}
	kctx, stop := context.WithCancel(o.ctx)
	ch, err := c.KeepAlive(kctx, id)
	if err != nil {
		stop()
		if o.lease == 0 {
			// Best effort: a lease nobody will renew expires anyway.
			_, _ = c.Revoke(context.WithoutCancel(o.ctx), id)
		}
		return nil, err
	}
	first := <-ch
	ctx, end := context.WithCancelCause(context.WithoutCancel(o.ctx))
	s := &Session{c: c, id: id, opts: o, ctx: ctx, end: end, stop: stop, ended: make(chan struct{})}
	go s.run(ch, first)
	return s, nil
}

// run follows the KeepAlive channel, which closes when the lease is gone or
// not renewed within its TTL (by the client's clock, from the send time of
// the last renewal), when the client closes, or when the session stops it.
func (s *Session) run(ch <-chan *etcdgw.LeaseKeepAliveResponse, first *etcdgw.LeaseKeepAliveResponse) {
	defer close(s.ended)
	defer s.stop()
	last, ttl := time.Now(), first.TTL
	for r := range ch {
		last, ttl = time.Now(), r.TTL
	}
	s.end(endCause(s.opts.ctx, time.Since(last), time.Duration(ttl)*time.Second))
}

// endCause tells why the KeepAlive channel of a session closed, when the
// session did not stop it itself (Close and Orphan set their cause first):
// the context of WithContext ended; or the channel closed about a TTL after
// the last renewal was received, which is the client's own clock expiring
// the lease; or it closed sooner, which is a renewal that found the lease
// gone (or the client closed).
func endCause(parent context.Context, sinceRenewal, ttl time.Duration) error {
	if parent.Err() != nil {
		return fmt.Errorf("%w: its context ended: %w", ErrSessionClosed, context.Cause(parent))
	}
	if sinceRenewal >= ttl*2/3 {
		return fmt.Errorf("%w: lease not renewed within its TTL of %v", ErrSessionExpired, ttl)
	}
	return fmt.Errorf("%w: lease gone (revoked or expired in etcd), or the client closed", ErrSessionExpired)
}

// Client returns the client the session was made with.
func (s *Session) Client() *etcdgw.Client { return s.c }

// Lease returns the ID of the session's lease.
func (s *Session) Lease() etcdgw.LeaseID { return s.id }

// Done returns a channel closed when the session ends (see Session).
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Ctx returns a context cancelled when the session ends; context.Cause tells
// why: an error matching ErrSessionClosed (Close, Orphan, the context of
// WithContext) or ErrSessionExpired (the lease is gone or expired).
func (s *Session) Ctx() context.Context { return s.ctx }

// Close ends the session, stops renewing and revokes the lease, which
// deletes every key attached to it (the session's locks and candidacies).
// A lease already gone is no error. Calling Close again does nothing.
func (s *Session) Close() error {
	if !s.shutdown(fmt.Errorf("%w: closed", ErrSessionClosed)) {
		return nil
	}
	// The client's WithTimeout bounds the revoke, even after the context of
	// WithContext ended.
	if _, err := s.c.Revoke(context.WithoutCancel(s.opts.ctx), s.id); err != nil && !errors.Is(err, etcdgw.ErrLeaseNotFound) {
		return err
	}
	return nil
}

// Orphan ends the session and stops renewing its lease without revoking it:
// the lease, and the keys attached to it, live until it expires.
func (s *Session) Orphan() {
	s.shutdown(fmt.Errorf("%w: orphaned", ErrSessionClosed))
}

// shutdown ends the session with cause and waits for its goroutine; false
// if it was already shut down.
func (s *Session) shutdown(cause error) bool {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	s.end(cause)
	s.stop()
	<-s.ended
	return first
}
