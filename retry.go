package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/etcdgw/etcdgw/internal/wire"
)

// attempt is what one attempt of a unary call came to, as the retry decision
// sees it: plain facts, gathered by the pipeline.
type attempt struct {
	write    bool // the call is a write: applying it twice is not the same as once
	sent     bool // the request may have reached etcd
	answered bool // an HTTP answer came, with status
	status   int
	ctxDone  bool // the call's ctx ended, or the client closed, before an answer
	timedOut bool // the attempt timeout ended it before the answer's headers
	tooLarge bool // the answer is over WithMaxResponseBytes
	// refused: etcd refused before proposing anything (no leader, not
	// capable), so even a write may go elsewhere.
	refused bool
	// stopping: "the client connection is closing" (408, 499): the member's
	// gateway is shutting down.
	stopping bool
}

// action is what the pipeline does after an attempt.
type action int

const (
	actDone    action = iota // a 2xx answer: decode it
	actNext                  // try the next member
	actFinal                 // return the error as it is
	actUnknown               // return it as ErrOutcomeUnknown: the write may have been applied
)

func (a action) String() string {
	return [...]string{"done", "next", "final", "unknown"}[a]
}

// decision is the verdict on an attempt: what to do, and whether it was the
// member's failure (which marks it unhealthy for the fail timeout).
type decision struct {
	act        action
	memberFail bool
}

// decide is the retry policy of unary calls, as one table (see the rows of
// TestDecide). A sent write that is not confirmed is of unknown outcome unless
// the answer is a refusal known to come before any proposal; an idempotent
// call goes to the next member after anything that is the member's failure.
// The caller's own ending (ctx, Close) and the client's own size limit are
// nobody's failure.
func decide(a attempt) decision {
	switch {
	case a.ctxDone:
		if a.write && a.sent {
			return decision{act: actUnknown}
		}
		return decision{act: actFinal}
	case a.tooLarge:
		return decision{act: actFinal}
	case !a.answered || a.timedOut:
		// Refused, reset, cut, no answer in time.
		if a.write && a.sent {
			return decision{act: actUnknown, memberFail: true}
		}
		return decision{act: actNext, memberFail: true}
	case a.status/100 == 2:
		return decision{act: actDone}
	case a.status == 501:
		// Not implemented: the answer of this server to this call, final.
		return decision{act: actFinal}
	case a.stopping, a.status >= 500:
		if a.write && !a.refused {
			return decision{act: actUnknown, memberFail: true}
		}
		return decision{act: actNext, memberFail: true}
	}
	return decision{act: actFinal}
}

// refusedBeforeProposal reports whether etcd's error answer e comes before the
// request was proposed to raft: nothing was applied.
func refusedBeforeProposal(e *Error) bool {
	return e.kind == wire.KindNoLeader || strings.Contains(e.Message, "etcdserver: not capable") ||
		// Membership changes refused by etcd's strict reconfiguration check.
		strings.Contains(e.Message, "etcdserver: unhealthy cluster")
}

// memberStopping reports whether e is the answer of a member whose gateway is
// shutting down: its connection to the member's own gRPC server is closing.
func memberStopping(e *Error) bool {
	return e.HTTPStatus == 408 || e.HTTPStatus == 499 ||
		(e.Code == wire.CodeCanceled && strings.Contains(e.Message, "client connection is closing"))
}

// errAttemptTimeout is the cause of an attempt that WithAttemptTimeout ended.
var errAttemptTimeout = errors.New("no answer within the attempt timeout")

// minAttemptTimeout is the smallest attempt timeout the client derives from a
// call's deadline: below it, the call's own deadline bounds the attempt.
const minAttemptTimeout = 100 * time.Millisecond

// attemptTimeout returns the bound of the next attempt of a call with ctx,
// given how many members it may still try; 0 means the call's ctx alone bounds
// it. Derived from the remaining deadline, it leaves at least half of it to
// another member.
func (c *Client) attemptTimeout(ctx context.Context, untried int) time.Duration {
	if c.cfg.attemptTimeout > 0 {
		return c.cfg.attemptTimeout
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return DefaultTimeout
	}
	if untried < 2 {
		return 0
	}
	d := time.Until(dl) / 2
	if d < minAttemptTimeout {
		return 0
	}
	return d
}

// multiError is an error that wraps several: a sentinel that says what the
// outcome means (ErrOutcomeUnknown, ErrUnavailable, ErrNoHealthyEndpoint),
// the context's error when it ended the call, and the cause.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string {
	cause := e.errs[len(e.errs)-1]
	return "etcdgw: " + e.msg + ": " + strings.TrimPrefix(cause.Error(), "etcdgw: ")
}

func (e *multiError) Unwrap() []error { return e.errs }

// transportError is a failure to get an answer from a member: a refused or
// reset connection, a TLS failure, an answer cut short, an attempt timeout.
// It matches ErrUnavailable.
type transportError struct {
	endpoint string
	err      error
	hint     string
}

func (e *transportError) Error() string {
	s := fmt.Sprintf("%s: %v", e.endpoint, e.err)
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

func (e *transportError) Unwrap() error { return e.err }

func (e *transportError) Is(target error) bool { return target == ErrUnavailable }

// transportHint says what to do about a transport failure whose cause is
// known, as a new user would need it; fresh reports an endpoint that never
// answered anything yet.
func transportHint(tlsEndpoint, fresh bool, err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: is etcd running there, and is this its client URL?"
	case strings.Contains(msg, "first record does not look like a TLS handshake"),
		strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the server speaks plain HTTP: use http://"
	case fresh && tlsEndpoint && errors.Is(err, errNoAnswer):
		return "if the server speaks plain HTTP, use http://"
	case fresh && !tlsEndpoint && (errors.Is(err, errNoAnswer) || strings.Contains(msg, "malformed HTTP response")):
		return "if the server speaks TLS, use https://"
	case strings.Contains(msg, "certificate"):
		return "TLS verification failed: trust the server's CA with WithCAFile, or check WithSNI"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "the host name does not resolve"
	}
	return ""
}

// errNoAnswer is a connection that closed before any answer.
var errNoAnswer = errors.New("connection closed with no answer")

// statusHint says what to do about an error answer that is not etcd's.
func statusHint(e *Error) string {
	if e.HTTPStatus == 404 && strings.Contains(e.Message, "404 page not found") {
		return "this URL does not serve etcd's gateway: is it etcd's client URL (not its peer port), with the gateway enabled (--enable-grpc-gateway)?"
	}
	return ""
}
