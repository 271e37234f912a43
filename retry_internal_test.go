package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdgw/etcdgw/internal/wire"
)

// TestDecide is the retry policy of unary calls, row by row: each fault a
// deployment can have, for a read and for a write.
func TestDecide(t *testing.T) {
	type row struct {
		name string
		a    attempt
		want decision
	}
	next := decision{act: actNext, memberFail: true}
	unknown := decision{act: actUnknown, memberFail: true}
	final := decision{act: actFinal}
	rows := []row{
		{"read answered 200", attempt{sent: true, answered: true, status: 200}, decision{act: actDone}},
		{"write answered 200", attempt{write: true, sent: true, answered: true, status: 200}, decision{act: actDone}},

		{"read refused connection", attempt{}, next},
		{"write refused connection: never sent", attempt{write: true}, next},
		{"read reset after sending", attempt{sent: true}, next},
		{"write reset after sending", attempt{write: true, sent: true}, unknown},
		{"read attempt timeout (hung member)", attempt{sent: true, timedOut: true}, next},
		{"write attempt timeout after sending", attempt{write: true, sent: true, timedOut: true}, unknown},
		{"write attempt timeout while connecting", attempt{write: true, timedOut: true}, next},

		{"read ctx deadline", attempt{sent: true, ctxDone: true}, final},
		{"write ctx deadline after sending", attempt{write: true, sent: true, ctxDone: true}, decision{act: actUnknown}},
		{"write ctx deadline before sending", attempt{write: true, ctxDone: true}, final},

		{"read over the size limit", attempt{sent: true, tooLarge: true}, final},
		{"write over the size limit", attempt{write: true, sent: true, tooLarge: true}, final},

		{"read no leader 503", attempt{sent: true, answered: true, status: 503, refused: true}, next},
		{"write no leader 503", attempt{write: true, sent: true, answered: true, status: 503, refused: true}, next},
		{"read request timed out 503", attempt{sent: true, answered: true, status: 503}, next},
		{"write request timed out 503", attempt{write: true, sent: true, answered: true, status: 503}, unknown},
		{"read proxy 502", attempt{sent: true, answered: true, status: 502}, next},
		{"write proxy 502", attempt{write: true, sent: true, answered: true, status: 502}, unknown},
		{"read proxy 504", attempt{sent: true, answered: true, status: 504}, next},
		{"write proxy 504", attempt{write: true, sent: true, answered: true, status: 504}, unknown},
		{"write etcd 500", attempt{write: true, sent: true, answered: true, status: 500}, unknown},
		{"read member stopping 499", attempt{sent: true, answered: true, status: 499, stopping: true}, next},
		{"write member stopping 499", attempt{write: true, sent: true, answered: true, status: 499, stopping: true}, unknown},
		{"read member stopping 408", attempt{sent: true, answered: true, status: 408, stopping: true}, next},

		{"read 501 not implemented", attempt{sent: true, answered: true, status: 501}, final},
		{"write 501 not implemented", attempt{write: true, sent: true, answered: true, status: 501}, final},
		{"write 400 not capable (3.5+)", attempt{write: true, sent: true, answered: true, status: 400, refused: true}, final},
		{"read 400 compacted", attempt{sent: true, answered: true, status: 400}, final},
		{"write 400 bad request", attempt{write: true, sent: true, answered: true, status: 400}, final},
		{"read 404 lease not found", attempt{sent: true, answered: true, status: 404}, final},
		{"write 403 permission denied", attempt{write: true, sent: true, answered: true, status: 403}, final},
		{"read 401 from a proxy", attempt{sent: true, answered: true, status: 401}, final},
		{"write 429 too many requests", attempt{write: true, sent: true, answered: true, status: 429}, final},
	}
	for _, r := range rows {
		if got := decide(r.a); got != r.want {
			t.Errorf("%s: decide(%+v) = %v (member fail %v), want %v (member fail %v)",
				r.name, r.a, got.act, got.memberFail, r.want.act, r.want.memberFail)
		}
	}
}

func TestRefusedAndStopping(t *testing.T) {
	parse := func(status int, body string) *Error {
		return newError(wire.ParseErrorBody(status, []byte(body)), "http://m")
	}
	cases := []struct {
		name               string
		e                  *Error
		refused, stopping  bool
		unavailable, stale bool
	}{
		{"no leader", parse(503, `{"code":14,"message":"etcdserver: no leader"}`), true, false, true, false},
		{"not capable", parse(503, `{"code":14,"message":"etcdserver: not capable"}`), true, false, true, false},
		{"unhealthy cluster", parse(503, `{"code":14,"message":"etcdserver: unhealthy cluster"}`), true, false, true, false},
		{"request timed out", parse(503, `{"code":14,"message":"etcdserver: request timed out"}`), false, false, true, false},
		{"leader changed", parse(503, `{"code":14,"message":"etcdserver: leader changed"}`), false, false, true, false},
		{"closing 499", parse(499, `{"code":1,"message":"grpc: the client connection is closing"}`), false, true, false, false},
		{"closing 408", parse(408, `{"error":"grpc: the client connection is closing","code":1}`), false, true, false, false},
		{"proxy 502", parse(502, "<html>Bad Gateway</html>"), false, false, false, false},
		{"proxy 401", parse(401, "Unauthorized"), false, false, false, false},
		{"etcd invalid token", parse(401, `{"code":16,"message":"etcdserver: invalid auth token"}`), false, false, false, true},
	}
	for _, c := range cases {
		if got := refusedBeforeProposal(c.e); got != c.refused {
			t.Errorf("%s: refusedBeforeProposal = %v, want %v", c.name, got, c.refused)
		}
		if got := memberStopping(c.e); got != c.stopping {
			t.Errorf("%s: memberStopping = %v, want %v", c.name, got, c.stopping)
		}
		if got := errors.Is(c.e, ErrUnavailable); got != c.unavailable {
			t.Errorf("%s: errors.Is(ErrUnavailable) = %v, want %v", c.name, got, c.unavailable)
		}
		if got := c.e.needsNewToken(); got != c.stale {
			t.Errorf("%s: needsNewToken = %v, want %v", c.name, got, c.stale)
		}
	}
}

func TestAttemptTimeout(t *testing.T) {
	c := &Client{}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if got := c.attemptTimeout(ctx, 1); got != 0 {
		t.Errorf("one member left: %v, want 0 (the call's deadline)", got)
	}
	if got := c.attemptTimeout(ctx, 3); got < 1900*time.Millisecond || got > 2*time.Second {
		t.Errorf("three members left of 4s: %v, want about 2s", got)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	if got := c.attemptTimeout(short, 3); got != 0 {
		t.Errorf("150ms left: %v, want 0 (below the floor)", got)
	}
	if got := c.attemptTimeout(context.Background(), 3); got != DefaultTimeout {
		t.Errorf("no deadline: %v, want %v", got, DefaultTimeout)
	}
	c.cfg.attemptTimeout = 300 * time.Millisecond
	if got := c.attemptTimeout(ctx, 1); got != 300*time.Millisecond {
		t.Errorf("WithAttemptTimeout(300ms): %v", got)
	}
}

func TestTransportHints(t *testing.T) {
	cases := []struct {
		tls, fresh bool
		err        error
		want       string
	}{
		{false, true, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "is etcd running there"},
		{true, true, errors.New("tls: first record does not look like a TLS handshake"), "use http://"},
		{true, true, fmt.Errorf("%w: %w", errNoAnswer, io.EOF), "use http://"},
		{false, true, fmt.Errorf("%w: %w", errNoAnswer, io.EOF), "use https://"},
		{false, false, fmt.Errorf("%w: %w", errNoAnswer, io.EOF), ""},
		{true, false, fmt.Errorf("%w: %w", errNoAnswer, io.EOF), ""},
		{true, true, errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), "WithCAFile"},
	}
	for _, c := range cases {
		got := transportHint(c.tls, c.fresh, c.err)
		if (c.want == "") != (got == "") || (c.want != "" && !strings.Contains(got, c.want)) {
			t.Errorf("transportHint(%v, %v) = %q, want it to say %q", c.tls, c.err, got, c.want)
		}
	}
	e := &transportError{endpoint: "http://m", err: io.EOF}
	if !errors.Is(e, ErrUnavailable) || !errors.Is(e, io.EOF) {
		t.Errorf("transportError must match ErrUnavailable and its cause")
	}
}

// Each request has a header map of its own: a wrapping RoundTripper that
// changes it cannot race with other requests, nor change the next ones.
func TestRequestHeadersAreNotShared(t *testing.T) {
	c, err := New(WithEndpoints("http://127.0.0.1:1"), WithHeader("X-Team", "a"), WithAPIPrefix("/v3"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ep := c.ring.Endpoints()[0]
	r := &rpc{path: wire.PathRange, body: []byte("{}"), idempotent: true}
	a, err := c.newRequest(context.Background(), ep, "/v3/kv/range", r, c.headers.Load())
	if err != nil {
		t.Fatal(err)
	}
	a.Header.Add("X-Team", "b")
	a.Header.Set("Traceparent", "00-1")
	b, err := c.newRequest(context.Background(), ep, "/v3/kv/range", r, c.headers.Load())
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Header.Values("X-Team"); len(got) != 1 || got[0] != "a" {
		t.Errorf("X-Team of the next request = %q, want [a]", got)
	}
	if b.Header.Get("Traceparent") != "" {
		t.Errorf("a header set on one request reached the next")
	}
}
