package etcdgw

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// authState is the token side of WithAuth.
type authState struct {
	fetch flight[string]
	// disabled is set when etcd answered that authentication is not enabled:
	// the client then sends no token, as clientv3 does, until etcd asks for one.
	disabled atomic.Bool
}

// needsNewToken reports whether the answer means the token was refused in a way
// a new token fixes.
func (e *Error) needsNewToken() bool {
	switch e.kind {
	case wire.KindInvalidAuthToken, wire.KindAuthOldRevision, wire.KindUserEmpty:
		return true
	}
	return false
}

// token returns the current token, fetching one if there is none yet.
func (c *Client) token(ctx context.Context) (string, error) {
	if h := c.headers.Load(); h.token != "" || c.auth.disabled.Load() {
		return h.token, nil
	}
	return c.refreshToken(ctx, "")
}

// refreshToken fetches a new token in place of stale; concurrent callers share
// one /auth/authenticate, and a caller whose stale token was already replaced
// gets the new one without a request.
func (c *Client) refreshToken(ctx context.Context, stale string) (string, error) {
	return c.auth.fetch.do(ctx, func(ctx context.Context) (string, error) {
		if h := c.headers.Load(); h.token != "" && h.token != stale {
			return h.token, nil
		}
		var ar wire.AuthenticateResponse
		err := c.unary(ctx, &rpc{
			path:       wire.PathAuthenticate,
			body:       wire.AppendAuthenticate(nil, c.cfg.username, c.cfg.password),
			idempotent: true,
			noAuth:     true,
		}, func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeAuthenticate(b, &ar) })
		c.tokenRefreshed(ctx, stale != "", err)
		if errors.Is(err, ErrAuthNotEnabled) {
			c.auth.disabled.Store(true)
			c.setHeaders("")
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if ar.Token == "" {
			return "", malformed("authenticate", errors.New("no token in the answer"))
		}
		c.auth.disabled.Store(false)
		c.setHeaders(ar.Token)
		return ar.Token, nil
	})
}
