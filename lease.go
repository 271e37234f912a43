package etcdgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// LeaseID is the ID of a lease.
type LeaseID int64

// LeaseGrantResponse is the answer of Grant.
type LeaseGrantResponse struct {
	Header ResponseHeader
	ID     LeaseID
	TTL    int64 // seconds, as granted: etcd raises a TTL below its minimum
}

// LeaseRevokeResponse is the answer of Revoke.
type LeaseRevokeResponse struct {
	Header ResponseHeader
}

// LeaseKeepAliveResponse is the answer of one renewal.
type LeaseKeepAliveResponse struct {
	Header ResponseHeader
	ID     LeaseID
	TTL    int64 // seconds the lease now has
}

// LeaseTimeToLiveResponse is the answer of TimeToLive.
type LeaseTimeToLiveResponse struct {
	Header     ResponseHeader
	ID         LeaseID
	TTL        int64    // seconds left; -1 when the lease does not exist
	GrantedTTL int64    // seconds the lease was granted for
	Keys       []string // attached keys, without the key prefix, when asked for
}

// LeaseLeasesResponse is the answer of Leases.
type LeaseLeasesResponse struct {
	Header ResponseHeader
	Leases []LeaseID
}

// Grant creates a lease of ttl seconds; the keys attached to it (WithLease)
// are deleted when it expires or is revoked. WithLease(id) asks for that ID.
// Errors: ErrInvalidArgument for ttl <= 0, ErrLeaseExists,
// ErrLeaseTTLTooLarge, ErrOutcomeUnknown for a grant sent and not confirmed
// (a lease may have been granted; unrenewed, it expires). [lua-resty-etcd: grant]
func (c *Client) Grant(ctx context.Context, ttl int64, opts ...OpOption) (*LeaseGrantResponse, error) {
	op := Op{}
	if err := op.applyOpts("Grant", grantOpts, opts); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, invalidArgument("Grant(%d): TTL must be positive", ttl)
	}
	var out wire.LeaseResponse
	err := c.unary(ctx, &rpc{path: wire.PathLeaseGrant, body: wire.AppendLeaseGrant(nil, ttl, int64(op.lease)), leader: op.leader()},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeLease(b, &out) })
	if err != nil {
		return nil, err
	}
	if out.Error != "" {
		return nil, &Error{Code: wire.CodeUnknown, Message: out.Error, kind: wire.Classify(wire.CodeUnknown, out.Error)}
	}
	return &LeaseGrantResponse{Header: ResponseHeader(out.Header), ID: LeaseID(out.ID), TTL: out.TTL}, nil
}

// Revoke ends a lease at once and deletes the keys attached to it.
// Errors: ErrLeaseNotFound, ErrOutcomeUnknown for a revoke sent and not
// confirmed. [lua-resty-etcd: revoke]
func (c *Client) Revoke(ctx context.Context, id LeaseID) (*LeaseRevokeResponse, error) {
	if id <= 0 {
		return nil, invalidArgument("Revoke(%d): lease ID must be positive", id)
	}
	var out wire.LeaseResponse
	err := c.unary(ctx, &rpc{path: wire.PathLeaseRevoke, body: wire.AppendLeaseID(nil, int64(id))},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeLease(b, &out) })
	if err != nil {
		return nil, err
	}
	return &LeaseRevokeResponse{Header: ResponseHeader(out.Header)}, nil
}

// KeepAliveOnce renews a lease once. Errors: ErrLeaseNotFound when the lease
// has expired or was revoked. [lua-resty-etcd: keepalive]
func (c *Client) KeepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error) {
	if id <= 0 {
		return nil, invalidArgument("KeepAliveOnce(%d): lease ID must be positive", id)
	}
	var out wire.LeaseResponse
	var st *wire.Status
	var from string
	// A renewal needs a leader: a member cut off from it cannot renew, and
	// the renewal must move on to one that can.
	err := c.unary(ctx, &rpc{path: wire.PathLeaseKeepAlive, body: wire.AppendLeaseID(nil, int64(id)), idempotent: true, leader: true},
		func(b []byte, ep *endpoint.Endpoint) error {
			from = ep.URL
			// The answer is a stream of one {"result":...} line.
			line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
			var err error
			st, err = wire.DecodeLeaseLine(line, &out)
			return err
		})
	if err != nil {
		return nil, err
	}
	if st != nil {
		return nil, newError(*st, from)
	}
	if out.TTL <= 0 {
		// A lease that is gone is no error to etcd: the answer just has no TTL.
		return nil, fmt.Errorf("etcdgw: KeepAliveOnce(%d): %w", id, ErrLeaseNotFound)
	}
	return &LeaseKeepAliveResponse{Header: ResponseHeader(out.Header), ID: LeaseID(out.ID), TTL: out.TTL}, nil
}

// TimeToLive returns what is left of a lease and, with keys, the keys attached
// to it under the key prefix, without it: keys outside the key prefix are left
// out. A lease that does not exist has TTL -1, as in etcd.
// [lua-resty-etcd: timetolive]
func (c *Client) TimeToLive(ctx context.Context, id LeaseID, keys bool) (*LeaseTimeToLiveResponse, error) {
	if id <= 0 {
		return nil, invalidArgument("TimeToLive(%d): lease ID must be positive", id)
	}
	var out wire.LeaseResponse
	err := c.unary(ctx, &rpc{path: wire.PathLeaseTTL, body: wire.AppendLeaseTimeToLive(nil, int64(id), keys), idempotent: true},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeLease(b, &out) })
	if err != nil {
		return nil, err
	}
	res := &LeaseTimeToLiveResponse{Header: ResponseHeader(out.Header), ID: LeaseID(out.ID), TTL: out.TTL, GrantedTTL: out.GrantedTTL}
	for _, k := range out.Keys {
		// A key outside the key prefix is not the client's to see, and
		// could not be told from one inside it.
		if rest, ok := bytes.CutPrefix(k, c.keyPrefix); ok {
			res.Keys = append(res.Keys, string(rest))
		}
	}
	return res, nil
}

// Leases lists the IDs of every lease. [lua-resty-etcd: leases]
func (c *Client) Leases(ctx context.Context) (*LeaseLeasesResponse, error) {
	var out wire.LeaseLeasesResponse
	err := c.unary(ctx, &rpc{path: wire.PathLeaseLeases, body: []byte("{}"), idempotent: true},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeLeases(b, &out) })
	if err != nil {
		return nil, err
	}
	res := &LeaseLeasesResponse{Header: ResponseHeader(out.Header), Leases: make([]LeaseID, len(out.Leases))}
	for i, id := range out.Leases {
		res.Leases[i] = LeaseID(id)
	}
	return res, nil
}

// Retry pauses of KeepAlive after a failed renewal.
const (
	keepAliveRetryMin = 100 * time.Millisecond
	keepAliveRetryMax = time.Second
)

// KeepAlive keeps a lease alive until ctx ends: it renews it once at once,
// returning ErrLeaseNotFound (or another error) if that fails, then in the
// background every third of its TTL, and delivers each renewal on the channel.
//
// The loop never waits for the reader: the channel holds the latest renewal
// and a reader that falls behind only misses older ones. A failed renewal is
// retried promptly, on another endpoint when there are several, for as long as
// the lease can still be saved. The channel closes when ctx ends, the client
// closes, or the lease is gone: revoked, expired, or not renewed for its whole
// TTL because etcd could not be reached. A holder of the lease (a lock, a
// leader) must stop acting on it when the channel closes.
//
// The renewals of the client's KeepAlive loops to one member share one
// duplex stream (HTTP/2 over https; a WebSocket over http, where watches
// may use one: see WithWatchMultiplexing), a line each way per renewal, unless
// WithWatchMultiplexing(false); a renewal the stream does not answer within
// its attempt timeout, or whose stream breaks, is sent again at once as a
// request of its own.
// [lua-resty-etcd: keepalive, which renews once]
func (c *Client) KeepAlive(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error) {
	sent := time.Now()
	first, err := c.KeepAliveOnce(ctx, id)
	if err != nil {
		return nil, err
	}
	ch := make(chan *LeaseKeepAliveResponse, 1)
	ch <- first
	k := &keepAlive{c: c, id: id, out: ch, ttl: first.TTL, deadline: sent.Add(time.Duration(first.TTL) * time.Second)}
	k.next = sent.Add(k.period())
	kctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	if !c.spawn(func() {
		defer stop()
		defer cancel()
		defer close(ch)
		k.run(kctx)
	}) {
		stop()
		cancel()
		return nil, ErrClosed
	}
	return ch, nil
}

// keepAlive is the state of one KeepAlive loop.
type keepAlive struct {
	c        *Client
	id       LeaseID
	out      chan *LeaseKeepAliveResponse
	ttl      int64     // seconds, as last granted
	deadline time.Time // when the lease expires if no renewal lands before
	next     time.Time // when to renew
	fails    int
	shared   *leaseStream // the duplex stream it renews on, if any
}

// period is the time between renewals: a third of the TTL.
func (k *keepAlive) period() time.Duration {
	return max(time.Duration(k.ttl)*time.Second/3, 100*time.Millisecond)
}

func (k *keepAlive) run(ctx context.Context) {
	defer k.dropStream()
	t := time.NewTimer(time.Until(k.next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !now.Before(k.deadline) {
			// Not renewed within its TTL: the lease has expired.
			k.c.log(ctx, slog.LevelWarn, "etcdgw: lease lost: not renewed within its TTL", slog.Int64("lease", int64(k.id)), slog.Int64("ttl", k.ttl))
			return
		}
		// An attempt must not outlive the lease: past the deadline it is lost
		// anyway, and the channel must say so on time.
		actx, cancel := context.WithDeadline(ctx, k.deadline)
		r, err := k.renew(actx)
		cancel()
		if o := k.c.cfg.observer; o != nil && o.KeepAlive != nil && ctx.Err() == nil {
			info := KeepAliveInfo{ID: k.id, Err: err, Duration: time.Since(now)}
			if r != nil {
				info.TTL = r.TTL
			}
			o.KeepAlive(ctx, info)
		}
		switch {
		case err == nil:
			k.fails = 0
			k.ttl = r.TTL
			k.deadline = now.Add(time.Duration(r.TTL) * time.Second)
			k.next = now.Add(k.period())
			k.deliver(r)
		case ctx.Err() != nil, errors.Is(err, ErrClosed):
			return
		case errors.Is(err, ErrLeaseNotFound):
			k.c.log(ctx, slog.LevelWarn, "etcdgw: lease lost: etcd no longer has it", slog.Int64("lease", int64(k.id)))
			return
		default:
			k.fails++
			k.c.log(ctx, slog.LevelWarn, "etcdgw: lease renewal failed", slog.Int64("lease", int64(k.id)),
				slog.Int("failures", k.fails), slog.Time("expires", k.deadline), slog.String("error", err.Error()))
			pause := min(keepAliveRetryMin<<min(k.fails-1, 4), keepAliveRetryMax)
			// Never past the deadline: the channel closes when the lease does.
			k.next = minTime(time.Now().Add(pause), k.deadline)
		}
		t.Reset(time.Until(k.next))
	}
}

// deliver puts r on the channel, replacing a renewal nobody read yet.
func (k *keepAlive) deliver(r *LeaseKeepAliveResponse) {
	for {
		select {
		case k.out <- r:
			return
		default:
		}
		select {
		case <-k.out:
		default:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
