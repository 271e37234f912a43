package etcdgw

import (
	"context"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Namespace returns a view of c that adds prefix after c's key prefix: its
// keys, ranges, watches, transactions and leases' keys are under it, as
// clientv3's namespace package does, and what it returns is stripped of it.
// The view shares c's connections, endpoints and their health, auth token
// and API prefix; it has c's options otherwise. Its Close ends only its own
// watches and keepalives; c's Close ends the view too. A namespace of a
// closed client fails every call with ErrClosed.
//
// Administration through a view (Status, MemberList, ...) is c's; its
// permissions' keys are under the view's prefix.
func (c *Client) Namespace(prefix string) *Client {
	kp := make([]byte, 0, len(c.keyPrefix)+len(prefix))
	kp = append(append(kp, c.keyPrefix...), prefix...)
	v := &Client{
		cfg:         c.cfg,
		ring:        c.ring,
		conns:       c.conns,
		base:        c.base,
		transport:   c.transport,
		serializer:  c.serializer,
		keyPrefix:   kp,
		maxBody:     c.maxBody,
		headers:     c.headers,
		prefix:      c.prefix,
		prefixFetch: c.prefixFetch,
		serverVer:   c.serverVer,
		auth:        c.auth,
		parent:      c,
	}
	v.cfg.keyPrefix = string(kp)
	if c.coal != nil {
		// A queue of its own: a coalesced answer is stripped of the key
		// prefix of the client whose reads it carries.
		v.coal = newCoalescer(len(c.ring.Endpoints()))
	}
	v.ctx, v.cancel = context.WithCancel(c.ctx)
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed.Load() {
		v.closed.Store(true)
		v.cancel()
		return v
	}
	if c.views == nil {
		c.views = map[*Client]bool{}
	}
	c.views[v] = true
	return v
}

// forget drops a closed namespace from c's.
func (c *Client) forget(v *Client) {
	c.life.Lock()
	defer c.life.Unlock()
	delete(c.views, v)
}

// Do runs op, made by OpGet, OpPut, OpDelete or OpTxn, as Get, Set, Delete or
// a transaction would, for code that builds operations generically; exactly
// the matching field of the answer is set. The errors are those of the
// matching call; an Op made otherwise (the zero Op) fails with
// ErrInvalidArgument.
func (c *Client) Do(ctx context.Context, op Op) (OpResponse, error) {
	if op.err != nil {
		return OpResponse{}, op.err
	}
	switch op.kind {
	case opGet:
		req, err := c.rangeRequest("Do", &op)
		if err != nil {
			return OpResponse{}, err
		}
		var a wire.Arena
		var out wire.RangeResponse
		if err := c.rangeCall(ctx, req, op.leader(), &a, &out); err != nil {
			return OpResponse{}, err
		}
		return OpResponse{Get: c.getResponse(&out)}, nil
	case opPut:
		req, err := c.putRequest("Do", &op)
		if err != nil {
			return OpResponse{}, err
		}
		if err := c.attachTTL(ctx, &op, req); err != nil {
			return OpResponse{}, err
		}
		var a wire.Arena
		var out wire.PutResponse
		err = c.unary(ctx, &rpc{path: wire.PathPut, body: wire.AppendPut(nil, req), leader: op.leader()},
			func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodePut(b, &a, &out) })
		if err != nil {
			return OpResponse{}, err
		}
		return OpResponse{Put: c.putResponse(&out)}, nil
	case opDelete:
		r, err := c.deleteOp(ctx, "Do", &op)
		if err != nil {
			return OpResponse{}, err
		}
		return OpResponse{Delete: r}, nil
	case opTxn:
		r, err := c.Txn(ctx).If(op.cmps...).Then(op.thenOps...).Else(op.elseOps...).Commit()
		if err != nil {
			return OpResponse{}, err
		}
		return OpResponse{Txn: r}, nil
	}
	return OpResponse{}, invalidArgument("Do: the Op was not made by OpGet, OpPut, OpDelete or OpTxn")
}

// PrefixEnd returns the range end that covers every key starting with key,
// for WithRange and for permissions: key with its last byte below 0xff
// incremented and what follows it dropped, or "\x00" (every key from key on)
// when there is none, as clientv3's GetPrefixRangeEnd.
func PrefixEnd(key string) string {
	return string(prefixEnd([]byte(key)))
}
