package wire

import (
	"bytes"
	"strings"
)

// Status is an error answer of the gateway: a unary error body, or the
// {"error":...} object that ends a stream.
type Status struct {
	Code       int    // gRPC status code
	HTTPStatus int    // the HTTP status of the answer, or the http_code of a v1 stream error
	Message    string // "etcdserver: ..." as etcd wrote it
}

// gRPC status codes.
const (
	CodeOK                 = 0
	CodeCanceled           = 1
	CodeUnknown            = 2
	CodeInvalidArgument    = 3
	CodeDeadlineExceeded   = 4
	CodeNotFound           = 5
	CodeAlreadyExists      = 6
	CodePermissionDenied   = 7
	CodeResourceExhausted  = 8
	CodeFailedPrecondition = 9
	CodeAborted            = 10
	CodeOutOfRange         = 11
	CodeUnimplemented      = 12
	CodeInternal           = 13
	CodeUnavailable        = 14
	CodeDataLoss           = 15
	CodeUnauthenticated    = 16
)

// CodeFromHTTP is the gRPC code that grpc-gateway maps to the HTTP status, for
// answers whose body carries none (plain-text routing errors, empty replies).
func CodeFromHTTP(status int) int {
	switch status {
	case 200:
		return CodeOK
	case 400:
		return CodeInvalidArgument
	case 401:
		return CodeUnauthenticated
	case 403:
		return CodePermissionDenied
	case 404:
		return CodeNotFound
	case 405, 501:
		return CodeUnimplemented
	case 408, 499:
		return CodeCanceled
	case 409:
		return CodeAborted
	case 412:
		return CodeFailedPrecondition
	case 429:
		return CodeResourceExhausted
	case 503:
		return CodeUnavailable
	case 504:
		return CodeDeadlineExceeded
	}
	return CodeUnknown
}

// ParseErrorBody reads the body of a non-2xx answer in any version's shape:
// {"error","code"} (3.3), {"error","message","code"} (3.4, 3.5),
// {"code","message","details"} (3.6+), a stream error object, plain text such as
// "404 page not found", or nothing at all. It never fails: what is not JSON
// becomes the message, and a missing code is derived from the HTTP status.
func ParseErrorBody(httpStatus int, body []byte) Status {
	st := Status{Code: -1, HTTPStatus: httpStatus}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		d := newDecoder(trimmed, nil)
		d.statusObject(&st)
		if d.end() != nil {
			st = Status{Code: -1, HTTPStatus: httpStatus, Message: textMessage(trimmed)}
		}
	} else {
		st.Message = textMessage(trimmed)
	}
	if st.Code < 0 {
		st.Code = CodeFromHTTP(httpStatus)
	}
	return st
}

// textMessage keeps a plain-text body readable in an error message.
func textMessage(b []byte) string {
	const max = 512
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// statusObject reads an error object: the members of every version's unary
// error body, and a nested "error" object as in stream errors.
func (d *decoder) statusObject(st *Status) {
	if !d.open('{') {
		return
	}
	var errText string
	for d.next('}') {
		switch string(d.key()) {
		case "code", "grpc_code":
			st.Code = int(d.int64())
		case "http_code":
			if c := int(d.int64()); c != 0 {
				st.HTTPStatus = c
			}
		case "message":
			st.Message = d.str()
		case "error":
			if d.peek() == '{' {
				d.statusObject(st)
			} else {
				errText = d.str()
			}
		default:
			d.skip()
		}
	}
	if st.Message == "" {
		st.Message = errText
	}
}

// Kind is what an etcd error means to a client, whatever the version's body
// shape: the mapping from etcd's messages and codes lives here and only here.
type Kind int

// The kinds of errors the client tells apart.
const (
	KindOther Kind = iota
	KindCompacted
	KindFutureRev
	KindLeaseNotFound
	KindLeaseExists
	KindLeaseTTLTooLarge
	KindKeyNotProvided
	KindRequestTooLarge
	KindTooManyOps
	KindDuplicateKey
	KindPermissionDenied
	KindAuthFailed
	KindInvalidAuthToken
	KindAuthOldRevision
	KindUserEmpty
	KindAuthNotEnabled
	KindNoLeader
	KindNoSpace
	KindTooManyRequests
	KindUnavailable
	KindDeadlineExceeded
	KindCanceled
	KindInvalidArgument
	KindNotFound
	KindUnimplemented
	// Administration.
	KindMemberNotFound
	KindMemberExists
	KindMemberNotLearner
	KindLearnerNotReady
	KindTooManyLearners
	KindBadLeaderTransferee
	KindUserNotFound
	KindUserExists
	KindRoleNotFound
	KindRoleExists
)

// messageKinds pairs the distinctive part of etcd's error messages
// (api/v3rpc/rpctypes, as seen through the gateway) with their kind. Messages
// are matched by substring so that the "rpc error: code = ... desc = " framing
// of watch cancel reasons does not matter.
var messageKinds = [...]struct {
	text string
	kind Kind
}{
	{"required revision has been compacted", KindCompacted},
	{"required revision is a future revision", KindFutureRev},
	{"requested lease not found", KindLeaseNotFound},
	{"lease already exists", KindLeaseExists},
	{"too large lease TTL", KindLeaseTTLTooLarge},
	{"key is not provided", KindKeyNotProvided},
	{"request is too large", KindRequestTooLarge},
	{"message larger than max", KindRequestTooLarge}, // the gateway's own gRPC limit
	{"too many operations in txn request", KindTooManyOps},
	{"duplicate key given in txn request", KindDuplicateKey},
	{"permission denied", KindPermissionDenied},
	{"authentication failed", KindAuthFailed},
	{"invalid auth token", KindInvalidAuthToken},
	{"revision of auth store is old", KindAuthOldRevision},
	{"user name is empty", KindUserEmpty},
	{"authentication is not enabled", KindAuthNotEnabled},
	{"etcdserver: no leader", KindNoLeader},
	{"database space exceeded", KindNoSpace},
	{"too many requests", KindTooManyRequests},
	// Administration. "learner member which is in sync" comes before
	// "can only promote a learner member", which it contains.
	{"member not found", KindMemberNotFound},
	{"member ID already exist", KindMemberExists},
	{"Peer URLs already exists", KindMemberExists},
	{"learner member which is in sync with leader", KindLearnerNotReady},
	{"can only promote a learner member", KindMemberNotLearner},
	{"too many learner members", KindTooManyLearners},
	{"bad leader transferee", KindBadLeaderTransferee},
	{"user name not found", KindUserNotFound},
	{"user name already exists", KindUserExists},
	{"role name not found", KindRoleNotFound},
	{"role name already exists", KindRoleExists},
}

// MayHaveApplied reports whether an error answer with this message leaves a
// write's outcome open: etcd proposed it and stopped waiting (a timeout, a
// leader change, the server stopping), so it may still be applied.
func MayHaveApplied(msg string) bool {
	return strings.Contains(msg, "request timed out") ||
		strings.Contains(msg, "leader changed") ||
		strings.Contains(msg, "server stopped")
}

// Classify returns the kind of the error with this gRPC code and message.
func Classify(code int, msg string) Kind {
	for _, m := range messageKinds {
		if strings.Contains(msg, m.text) {
			return m.kind
		}
	}
	switch code {
	case CodeUnavailable:
		return KindUnavailable
	case CodeDeadlineExceeded:
		return KindDeadlineExceeded
	case CodeCanceled:
		return KindCanceled
	case CodePermissionDenied:
		return KindPermissionDenied
	case CodeInvalidArgument:
		return KindInvalidArgument
	case CodeNotFound:
		return KindNotFound
	case CodeUnimplemented:
		return KindUnimplemented
	}
	return KindOther
}

var codeNames = map[string]int{
	"OK": CodeOK, "Canceled": CodeCanceled, "Unknown": CodeUnknown, "InvalidArgument": CodeInvalidArgument,
	"DeadlineExceeded": CodeDeadlineExceeded, "NotFound": CodeNotFound, "AlreadyExists": CodeAlreadyExists,
	"PermissionDenied": CodePermissionDenied, "ResourceExhausted": CodeResourceExhausted,
	"FailedPrecondition": CodeFailedPrecondition, "Aborted": CodeAborted, "OutOfRange": CodeOutOfRange,
	"Unimplemented": CodeUnimplemented, "Internal": CodeInternal, "Unavailable": CodeUnavailable,
	"DataLoss": CodeDataLoss, "Unauthenticated": CodeUnauthenticated,
}

// ParseCancelReason reads a watch's cancel_reason, which is either a gRPC
// error string, "rpc error: code = PermissionDenied desc = etcdserver: permission
// denied", or a bare message such as "mvcc: duplicate watch ID provided on the
// WatchStream".
func ParseCancelReason(reason string) Status {
	const pre, mid = "rpc error: code = ", " desc = "
	if rest, ok := strings.CutPrefix(reason, pre); ok {
		if name, desc, ok := strings.Cut(rest, mid); ok {
			if code, ok := codeNames[name]; ok {
				return Status{Code: code, Message: desc}
			}
		}
	}
	code := CodeUnknown
	switch Classify(CodeUnknown, reason) {
	case KindCompacted, KindFutureRev:
		code = CodeOutOfRange
	}
	return Status{Code: code, Message: reason}
}
