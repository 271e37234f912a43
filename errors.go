package etcdgw

import (
	"errors"
	"fmt"

	"github.com/etcdgw/etcdgw/internal/wire"
)

// Error is an error answer from etcd: a non-2xx reply of the gateway, an
// {"error":...} object that ends a stream, or a watch canceled by the server.
// errors.Is matches it to the sentinel errors of this package by meaning,
// whatever the server version's body shape, so callers test
// errors.Is(err, ErrCompacted) rather than the message.
type Error struct {
	Code       int    // gRPC status code from the body, or derived from the HTTP status
	HTTPStatus int    // HTTP status of the reply; 0 for an error inside a stream
	Message    string // etcd's message, such as "etcdserver: mvcc: required revision has been compacted"
	Endpoint   string // the endpoint that answered

	kind wire.Kind
	hint string // what to do about it, when the cause is known
}

func newError(st wire.Status, endpoint string) *Error {
	return &Error{
		Code:       st.Code,
		HTTPStatus: st.HTTPStatus,
		Message:    st.Message,
		Endpoint:   endpoint,
		kind:       wire.Classify(st.Code, st.Message),
	}
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "empty error reply"
	}
	var s string
	if e.HTTPStatus != 0 {
		s = fmt.Sprintf("etcdgw: %s (code %d, http %d, %s)", msg, e.Code, e.HTTPStatus, e.Endpoint)
	} else {
		s = fmt.Sprintf("etcdgw: %s (code %d, %s)", msg, e.Code, e.Endpoint)
	}
	if e.hint != "" {
		s += ": " + e.hint
	}
	return s
}

// Is reports whether target is the sentinel error for e's meaning: its kind, or
// ErrUnavailable for any answer with the Unavailable code.
func (e *Error) Is(target error) bool {
	if target == nil {
		return false
	}
	if s := kindErrors[e.kind]; s != nil && s == target {
		return true
	}
	return target == ErrUnavailable && (e.Code == wire.CodeUnavailable || e.kind == wire.KindNoLeader)
}

// Errors that etcd answers with. errors.Is matches an *Error, and a watch's
// WatchResponse.Err, to these.
var (
	ErrCompacted        = errors.New("etcdgw: mvcc: required revision has been compacted")
	ErrFutureRev        = errors.New("etcdgw: mvcc: required revision is a future revision")
	ErrLeaseNotFound    = errors.New("etcdgw: requested lease not found")
	ErrLeaseExists      = errors.New("etcdgw: lease already exists")
	ErrLeaseTTLTooLarge = errors.New("etcdgw: too large lease TTL")
	ErrKeyNotProvided   = errors.New("etcdgw: key is not provided")
	ErrRequestTooLarge  = errors.New("etcdgw: request is too large")
	ErrTooManyOps       = errors.New("etcdgw: too many operations in txn request")
	ErrDuplicateKey     = errors.New("etcdgw: duplicate key given in txn request")
	ErrPermissionDenied = errors.New("etcdgw: permission denied")
	ErrAuthFailed       = errors.New("etcdgw: authentication failed, invalid user ID or password")
	ErrInvalidAuthToken = errors.New("etcdgw: invalid auth token")
	ErrAuthOldRevision  = errors.New("etcdgw: revision of auth store is old")
	ErrUserEmpty        = errors.New("etcdgw: user name is empty")
	ErrAuthNotEnabled   = errors.New("etcdgw: authentication is not enabled")
	ErrNoLeader         = errors.New("etcdgw: no leader")
	ErrNoSpace          = errors.New("etcdgw: mvcc: database space exceeded")
	ErrTooManyRequests  = errors.New("etcdgw: too many requests")
	// Errors of the administration calls.
	ErrMemberNotFound      = errors.New("etcdgw: member not found")
	ErrMemberExists        = errors.New("etcdgw: member already exists") // same ID or peer URLs
	ErrMemberNotLearner    = errors.New("etcdgw: can only promote a learner member")
	ErrLearnerNotReady     = errors.New("etcdgw: can only promote a learner member which is in sync with leader")
	ErrTooManyLearners     = errors.New("etcdgw: too many learner members in cluster")
	ErrBadLeaderTransferee = errors.New("etcdgw: bad leader transferee")
	ErrUserNotFound        = errors.New("etcdgw: user name not found")
	ErrUserExists          = errors.New("etcdgw: user name already exists")
	ErrRoleNotFound        = errors.New("etcdgw: role name not found")
	ErrRoleExists          = errors.New("etcdgw: role name already exists")
	// ErrUnavailable matches every answer with gRPC code Unavailable (HTTP 503):
	// no leader, leader changed, request timed out, server stopped; and every
	// failure to get an answer from a member: a refused or reset connection, a
	// TLS failure, an attempt timeout. A read that found no member able to
	// answer fails with it (and with the context's error when the deadline
	// ended it).
	ErrUnavailable = errors.New("etcdgw: etcd unavailable")
)

// Errors of the client itself.
var (
	// ErrNoHealthyEndpoint is returned at once when every endpoint is marked
	// unhealthy; see WithHealthCheck. The error also wraps the last failure
	// seen (it matches ErrUnavailable, and errors.As finds the cause).
	ErrNoHealthyEndpoint = errors.New("etcdgw: no healthy endpoint")
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("etcdgw: client is closed")
	// ErrOutcomeUnknown is matched by the error of a write that may have been
	// applied and was not confirmed: the connection failed after the request
	// was sent, the attempt timeout or the call's deadline passed after it was
	// sent, or the answer was a 5xx (of etcd, or of a proxy: 502, 504) other
	// than a refusal known to come before any proposal (no leader, not
	// capable). Such a write is never retried. The cause stays reachable
	// through errors.Is and errors.As, and so does the context's error (or
	// ErrClosed) when the deadline or Close ended the call.
	ErrOutcomeUnknown = errors.New("etcdgw: outcome unknown")
	// ErrInvalidOption is returned for a bad option value, or an option that
	// does not apply to the call, before anything is sent.
	ErrInvalidOption = errors.New("etcdgw: invalid option")
	// ErrInvalidArgument is returned for a bad argument, such as an unknown
	// compare operator or a value the serializer refuses, before anything is sent.
	ErrInvalidArgument = errors.New("etcdgw: invalid argument")
	// ErrResponseTooLarge is returned for an answer, or a watch message, over
	// the client's WithMaxResponseBytes. It is the client's own limit: the call
	// is not retried on another member and no member is marked unhealthy; a
	// watch ends with it and is not resumed.
	ErrResponseTooLarge = errors.New("etcdgw: response too large")
	// ErrMalformedResponse is returned when etcd's answer cannot be read:
	// malformed JSON, a cut stream, a line over the size limit.
	ErrMalformedResponse = errors.New("etcdgw: malformed response")
)

var kindErrors = [...]error{
	wire.KindCompacted:        ErrCompacted,
	wire.KindFutureRev:        ErrFutureRev,
	wire.KindLeaseNotFound:    ErrLeaseNotFound,
	wire.KindLeaseExists:      ErrLeaseExists,
	wire.KindLeaseTTLTooLarge: ErrLeaseTTLTooLarge,
	wire.KindKeyNotProvided:   ErrKeyNotProvided,
	wire.KindRequestTooLarge:  ErrRequestTooLarge,
	wire.KindTooManyOps:       ErrTooManyOps,
	wire.KindDuplicateKey:     ErrDuplicateKey,
	wire.KindPermissionDenied: ErrPermissionDenied,
	wire.KindAuthFailed:       ErrAuthFailed,
	wire.KindInvalidAuthToken: ErrInvalidAuthToken,
	wire.KindAuthOldRevision:  ErrAuthOldRevision,
	wire.KindUserEmpty:        ErrUserEmpty,
	wire.KindAuthNotEnabled:   ErrAuthNotEnabled,
	wire.KindNoLeader:         ErrNoLeader,
	wire.KindNoSpace:          ErrNoSpace,
	wire.KindTooManyRequests:  ErrTooManyRequests,
	wire.KindUnimplemented:    nil,

	wire.KindMemberNotFound:      ErrMemberNotFound,
	wire.KindMemberExists:        ErrMemberExists,
	wire.KindMemberNotLearner:    ErrMemberNotLearner,
	wire.KindLearnerNotReady:     ErrLearnerNotReady,
	wire.KindTooManyLearners:     ErrTooManyLearners,
	wire.KindBadLeaderTransferee: ErrBadLeaderTransferee,
	wire.KindUserNotFound:        ErrUserNotFound,
	wire.KindUserExists:          ErrUserExists,
	wire.KindRoleNotFound:        ErrRoleNotFound,
	wire.KindRoleExists:          ErrRoleExists,
}

// invalidOption returns an error wrapping ErrInvalidOption.
func invalidOption(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// invalidArgument returns an error wrapping ErrInvalidArgument.
func invalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// malformed wraps a decoding error of an answer from endpoint.
func malformed(endpoint string, err error) error {
	return fmt.Errorf("%w from %s: %v", ErrMalformedResponse, endpoint, err)
}
