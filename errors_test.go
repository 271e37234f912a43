package etcdgw_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

// fakeGateway starts an httptest server that answers every request with
// handler, and returns a client of it with the /v3 prefix, so that the fake
// need not answer /version. Both end with the test.
func fakeGateway(t *testing.T, handler http.HandlerFunc, opts ...etcdgw.Option) (*etcdgw.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	opts = append([]etcdgw.Option{etcdgw.WithEndpoints(srv.URL), etcdgw.WithAPIPrefix("/v3")}, opts...)
	c, err := etcdgw.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, srv
}

// answer returns a handler that reads the request and answers status and body
// as JSON.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// sentinels are the errors etcd's answers are matched to.
var sentinels = map[string]error{
	"ErrCompacted":        etcdgw.ErrCompacted,
	"ErrFutureRev":        etcdgw.ErrFutureRev,
	"ErrLeaseNotFound":    etcdgw.ErrLeaseNotFound,
	"ErrLeaseExists":      etcdgw.ErrLeaseExists,
	"ErrLeaseTTLTooLarge": etcdgw.ErrLeaseTTLTooLarge,
	"ErrKeyNotProvided":   etcdgw.ErrKeyNotProvided,
	"ErrRequestTooLarge":  etcdgw.ErrRequestTooLarge,
	"ErrTooManyOps":       etcdgw.ErrTooManyOps,
	"ErrDuplicateKey":     etcdgw.ErrDuplicateKey,
	"ErrPermissionDenied": etcdgw.ErrPermissionDenied,
	"ErrAuthFailed":       etcdgw.ErrAuthFailed,
	"ErrInvalidAuthToken": etcdgw.ErrInvalidAuthToken,
	"ErrAuthOldRevision":  etcdgw.ErrAuthOldRevision,
	"ErrUserEmpty":        etcdgw.ErrUserEmpty,
	"ErrAuthNotEnabled":   etcdgw.ErrAuthNotEnabled,
	"ErrNoLeader":         etcdgw.ErrNoLeader,
	"ErrNoSpace":          etcdgw.ErrNoSpace,
	"ErrTooManyRequests":  etcdgw.ErrTooManyRequests,
	"ErrUnavailable":      etcdgw.ErrUnavailable,
	// Errors of the client itself never match an answer.
	"ErrNoHealthyEndpoint": etcdgw.ErrNoHealthyEndpoint,
	"ErrClosed":            etcdgw.ErrClosed,
	"ErrOutcomeUnknown":    etcdgw.ErrOutcomeUnknown,
	"ErrInvalidOption":     etcdgw.ErrInvalidOption,
	"ErrInvalidArgument":   etcdgw.ErrInvalidArgument,
	"ErrMalformedResponse": etcdgw.ErrMalformedResponse,
	"ErrResponseTooLarge":  etcdgw.ErrResponseTooLarge,
}

// assertSentinels checks that err matches exactly the sentinels named in want.
func assertSentinels(t *testing.T, err error, want ...string) {
	t.Helper()
	for name, s := range sentinels {
		wanted := false
		for _, w := range want {
			wanted = wanted || w == name
		}
		assert.Equal(t, wanted, errors.Is(err, s), "errors.Is(%v, %s)", err, name)
	}
}

// asError returns err as *etcdgw.Error, failing the test if it is not one.
func asError(t *testing.T, err error) *etcdgw.Error {
	t.Helper()
	require.Error(t, err)
	var e *etcdgw.Error
	require.True(t, errors.As(err, &e), "got %T %v, want *etcdgw.Error", err, err)
	return e
}

const msgCompacted = "etcdserver: mvcc: required revision has been compacted"

func TestErrorBodyShapes(t *testing.T) {
	q := strconv.Quote
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"3.3", 400, `{"error":` + q(msgCompacted) + `,"code":11}`},
		{"3.4.0-3.4.22", 400, `{"error":` + q(msgCompacted) + `,"message":` + q(msgCompacted) + `,"code":11}`},
		{"3.4.24-3.5", 400, `{"error":` + q(msgCompacted) + `,"code":11,"message":` + q(msgCompacted) + `}`},
		{"3.6+", 400, `{"code":11,"message":` + q(msgCompacted) + `,"details":[]}`},
		{"3.6+ without details", 400, `{"code":11,"message":` + q(msgCompacted) + `}`},
		{"3.6+ with whitespace", 400, "{\n  \"code\": 11,\n  \"message\":  " + q(msgCompacted) + " ,\"details\": [ ]\n}\n"},
		{"3.5 with details", 400, `{"error":` + q(msgCompacted) + `,"code":11,"message":` + q(msgCompacted) + `,"details":[{"@type":"x","value":"eA=="}]}`},
		{"v1 stream error", 400, `{"error":{"grpc_code":11,"http_code":400,"message":` + q(msgCompacted) + `,"http_status":"Bad Request"}}`},
		{"v2 stream error", 400, `{"error":{"code":11,"message":` + q(msgCompacted) + "}}\n"},
		{"unknown fields", 400, `{"code":11,"extra":{"a":[1,2,{"b":null}]},"message":` + q(msgCompacted) + `,"more":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := fakeGateway(t, answer(tt.status, tt.body))
			_, err := c.Get(testCtx(t), "k", etcdgw.WithRev(1))
			e := asError(t, err)
			assert.Equal(t, 11, e.Code)
			assert.Equal(t, tt.status, e.HTTPStatus)
			assert.Equal(t, msgCompacted, e.Message)
			assert.Equal(t, srv.URL, e.Endpoint)
			assertSentinels(t, err, "ErrCompacted")
			assert.Contains(t, err.Error(), msgCompacted)
		})
	}
}

func TestErrorBodyShapeChunkedWithTrailer(t *testing.T) {
	// 3.4.24+ (grpc-gateway v1.11) sends error bodies chunked, with a trailer.
	c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "Grpc-Trailer-Content-Type")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.(http.Flusher).Flush()
		io.WriteString(w, `{"error":`+strconv.Quote(msgCompacted)+`,"code":11,"message":`+strconv.Quote(msgCompacted)+`}`)
		w.Header().Set("Grpc-Trailer-Content-Type", "application/grpc")
	})
	_, err := c.Get(testCtx(t), "k", etcdgw.WithRev(1))
	e := asError(t, err)
	assert.Equal(t, 11, e.Code)
	assert.Equal(t, 400, e.HTTPStatus)
	assertSentinels(t, err, "ErrCompacted")
}

func TestErrorMessages(t *testing.T) {
	// The table of gateway-wire-protocol.md §8, each in the 3.6+ and the 3.5 shape.
	tests := []struct {
		msg    string
		code   int
		status int
		want   []string
	}{
		{"etcdserver: key is not provided", 3, 400, []string{"ErrKeyNotProvided"}},
		{msgCompacted, 11, 400, []string{"ErrCompacted"}},
		{"etcdserver: mvcc: required revision is a future revision", 11, 400, []string{"ErrFutureRev"}},
		{"etcdserver: requested lease not found", 5, 404, []string{"ErrLeaseNotFound"}},
		{"etcdserver: lease already exists", 9, 400, []string{"ErrLeaseExists"}},
		{"etcdserver: too large lease TTL", 11, 400, []string{"ErrLeaseTTLTooLarge"}},
		{"etcdserver: request is too large", 3, 400, []string{"ErrRequestTooLarge"}},
		{"grpc: received message larger than max (2600011 vs. 2097152)", 8, 429, []string{"ErrRequestTooLarge"}},
		{"etcdserver: too many operations in txn request", 3, 400, []string{"ErrTooManyOps"}},
		{"etcdserver: duplicate key given in txn request", 3, 400, []string{"ErrDuplicateKey"}},
		{"etcdserver: permission denied", 7, 403, []string{"ErrPermissionDenied"}},
		{"etcdserver: authentication failed, invalid user ID or password", 3, 400, []string{"ErrAuthFailed"}},
		{"etcdserver: invalid auth token", 16, 401, []string{"ErrInvalidAuthToken"}},
		{"etcdserver: user name is empty", 3, 400, []string{"ErrUserEmpty"}},
		{"etcdserver: revision of auth store is old", 3, 400, []string{"ErrAuthOldRevision"}},
		{"etcdserver: authentication is not enabled", 9, 400, []string{"ErrAuthNotEnabled"}},
		{"etcdserver: no leader", 14, 503, []string{"ErrNoLeader", "ErrUnavailable"}},
		{"etcdserver: mvcc: database space exceeded", 8, 429, []string{"ErrNoSpace"}},
		{"etcdserver: too many requests", 8, 429, []string{"ErrTooManyRequests"}},
		// Any code 14 is ErrUnavailable, whatever the message.
		{"etcdserver: request timed out", 14, 503, []string{"ErrUnavailable"}},
		{"etcdserver: request timed out, possibly due to previous leader failure", 14, 503, []string{"ErrUnavailable"}},
		{"etcdserver: leader changed", 14, 503, []string{"ErrUnavailable"}},
		{"etcdserver: server stopped", 14, 503, []string{"ErrUnavailable"}},
		{"etcdserver: not capable", 14, 503, []string{"ErrUnavailable"}},
		{"some message of a future etcd", 14, 503, []string{"ErrUnavailable"}},
		// 3.6+ moved these from 14 to 9: no longer unavailable.
		{"etcdserver: not capable", 9, 400, nil},
		// Errors with no sentinel.
		{"etcdserver: member not found", 5, 404, nil},
		{"etcdserver: invalid sort option", 3, 400, nil},
		{"unexpected EOF", 3, 400, nil},
	}
	for _, tt := range tests {
		shapes := map[string]string{
			"3.6": fmt.Sprintf(`{"code":%d,"message":%q}`, tt.code, tt.msg),
			"3.5": fmt.Sprintf(`{"error":%q,"code":%d,"message":%q}`, tt.msg, tt.code, tt.msg),
		}
		for shape, body := range shapes {
			t.Run(fmt.Sprintf("%s/%d %s", shape, tt.code, tt.msg), func(t *testing.T) {
				c, srv := fakeGateway(t, answer(tt.status, body))
				_, err := c.Get(testCtx(t), "k")
				e := asError(t, err)
				assert.Equal(t, tt.code, e.Code)
				assert.Equal(t, tt.status, e.HTTPStatus)
				assert.Equal(t, tt.msg, e.Message)
				assert.Equal(t, srv.URL, e.Endpoint)
				assertSentinels(t, err, tt.want...)
			})
		}
	}
}

// everyUnaryCall returns a call of each unary method of c, by name.
func everyUnaryCall(ctx context.Context, c *etcdgw.Client) map[string]func() error {
	return map[string]func() error{
		"Get":           func() error { _, err := c.Get(ctx, "k"); return err },
		"Set":           func() error { _, err := c.Set(ctx, "k", "v"); return err },
		"SetNX":         func() error { _, err := c.SetNX(ctx, "k", "v"); return err },
		"SetX":          func() error { _, err := c.SetX(ctx, "k", "v"); return err },
		"Delete":        func() error { _, err := c.Delete(ctx, "k"); return err },
		"ReadDir":       func() error { _, err := c.ReadDir(ctx, "d/"); return err },
		"RmDir":         func() error { _, err := c.RmDir(ctx, "d/"); return err },
		"Compact":       func() error { return c.Compact(ctx, 1) },
		"Txn":           func() error { _, err := c.Txn(ctx).Then(etcdgw.OpGet("k")).Commit(); return err },
		"Grant":         func() error { _, err := c.Grant(ctx, 10); return err },
		"Revoke":        func() error { _, err := c.Revoke(ctx, 1); return err },
		"KeepAliveOnce": func() error { _, err := c.KeepAliveOnce(ctx, 1); return err },
		"TimeToLive":    func() error { _, err := c.TimeToLive(ctx, 1, false); return err },
		"Leases":        func() error { _, err := c.Leases(ctx); return err },
		"Version":       func() error { _, err := c.Version(ctx); return err },
	}
}

func TestErrorsOfEveryCall(t *testing.T) {
	// Every unary call maps an error answer, unary bodies and keepalive alike.
	c, _ := fakeGateway(t, answer(400, `{"code":11,"message":"`+msgCompacted+`"}`))
	ctx := testCtx(t)
	calls := everyUnaryCall(ctx, c)
	for name, call := range calls {
		err := call()
		assert.ErrorIs(t, err, etcdgw.ErrCompacted, name)
		var e *etcdgw.Error
		if assert.True(t, errors.As(err, &e), "%s: %v", name, err) {
			assert.Equal(t, 400, e.HTTPStatus, name)
		}
	}
}

func TestErrorBodiesWithoutJSON(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode int
		wantMsg  string
		want     []string
	}{
		{"404 page not found", 404, "404 page not found\n", 5, "404 page not found", nil},
		{"405 Method Not Allowed", 405, "Method Not Allowed\n", 12, "Method Not Allowed", nil},
		{"501 v2 Method Not Allowed", 501, `{"code":12,"message":"Method Not Allowed"}`, 12, "Method Not Allowed", nil},
		{"404 v2 Not Found", 404, `{"code":5,"message":"Not Found"}`, 5, "Not Found", nil},
		{"empty 503", 503, "", 14, "", []string{"ErrUnavailable"}},
		{"empty 401 (a proxy's, not etcd's token refusal)", 401, "", 16, "", nil},
		{"empty 403", 403, "", 7, "", []string{"ErrPermissionDenied"}},
		{"421 host whitelist", 421, "Misdirected Request", 2, "Misdirected Request", nil},
		{"HTML from a proxy: no member could serve the read", 502, "<html><body>Bad Gateway</body></html>", 2, "<html><body>Bad Gateway</body></html>", []string{"ErrUnavailable"}},
		{"broken JSON", 400, `{"code":11,"message":"etcdserver: mvcc`, 3, `{"code":11,"message":"etcdserver: mvcc`, nil},
		{"JSON of wrong types", 400, `{"code":"eleven","message":["x"]}`, 3, `{"code":"eleven","message":["x"]}`, nil},
		{"binary", 400, "\xff\xfe\x00\x01", 3, "\ufffd\x00\x01", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := c.Get(testCtx(t), "k")
			e := asError(t, err)
			assert.Equal(t, tt.wantCode, e.Code)
			assert.Equal(t, tt.status, e.HTTPStatus)
			assert.Equal(t, tt.wantMsg, e.Message)
			assert.Equal(t, srv.URL, e.Endpoint)
			assertSentinels(t, err, tt.want...)
			assert.NotEmpty(t, e.Error())
		})
	}
}

// hangUp is 3.4.23's answer to every error: the connection closes without a
// response.
func hangUp(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func TestEmptyReply(t *testing.T) {
	c, _ := fakeGateway(t, hangUp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := c.Get(ctx, "k")
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the call waited for its deadline")
	var e *etcdgw.Error
	assert.False(t, errors.As(err, &e), "no answer is no *Error: %v", err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)

	// A write may have been applied before the connection closed.
	c2, _ := fakeGateway(t, hangUp)
	_, err = c2.Set(ctx, "k", "v")
	require.Error(t, err)
	assert.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
	require.NoError(t, ctx.Err(), "the call waited for its deadline")
}

// rangeBody is a gateway answer to a range with one key whose value has n bytes.
func rangeBody(n int) string {
	val := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("v", n)))
	return `{"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"3"},` +
		`"kvs":[{"key":"aw==","create_revision":"5","mod_revision":"7","version":"2","value":"` + val + `"}],"count":"1"}`
}

func TestMalformedAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"HTML", "<html>ok</html>"},
		{"plain text", "OK"},
		{"empty", ""},
		{"JSON cut short", rangeBody(10)[:40]},
		{"trailing garbage", rangeBody(10) + "}"},
		{"two documents", rangeBody(10) + rangeBody(10)},
		{"kvs not a list", `{"header":{"revision":"7"},"kvs":"x"}`},
		{"revision not a number", `{"header":{"revision":"seven"}}`},
		{"value not base64", `{"header":{"revision":"7"},"kvs":[{"key":"aw==","value":"!!!"}],"count":"1"}`},
		{"key of wrong type", `{"header":{"revision":"7"},"kvs":[{"key":7}],"count":"1"}`},
		{"array", `[]`},
		{"deep nesting", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeGateway(t, answer(200, tt.body))
			got, err := c.Get(testCtx(t), "k")
			assert.Nil(t, got)
			assert.ErrorIs(t, err, etcdgw.ErrMalformedResponse)
		})
	}
}

func TestTruncatedAnswer(t *testing.T) {
	body := rangeBody(1000)
	c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.Get(ctx, "k")
	assert.Nil(t, got)
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the call waited for its deadline")
	assert.True(t, errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, etcdgw.ErrMalformedResponse),
		"got %v, want a cut answer", err)
}

func TestAnswerOverMaxResponseBytes(t *testing.T) {
	body := rangeBody(4000)
	sized := answer(200, body)
	chunked := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // no Content-Length: the body is chunked
		for i := 0; i < len(body); i += 100 {
			io.WriteString(w, body[i:min(i+100, len(body))])
			w.(http.Flusher).Flush()
		}
	}
	for name, h := range map[string]http.HandlerFunc{"with Content-Length": sized, "chunked": chunked} {
		t.Run(name, func(t *testing.T) {
			// The answer is fine under a limit it fits in...
			c, _ := fakeGateway(t, h, etcdgw.WithMaxResponseBytes(len(body)))
			got, err := c.Get(testCtx(t), "k")
			require.NoError(t, err)
			require.Len(t, got.Kvs, 1)
			assert.Len(t, got.Kvs[0].Value, 4000)
			assert.Equal(t, int64(7), got.Header.Revision)

			// ...and refused over a smaller one.
			c, _ = fakeGateway(t, h, etcdgw.WithMaxResponseBytes(1024))
			got, err = c.Get(testCtx(t), "k")
			assert.Nil(t, got)
			assert.ErrorIs(t, err, etcdgw.ErrResponseTooLarge)
			assert.NotErrorIs(t, err, etcdgw.ErrMalformedResponse)
			assert.Equal(t, 1, strings.Count(err.Error(), "etcdgw: "), "one prefix: %v", err)
		})
	}
}

// Errors that a real etcd with default limits answers.

func TestRealErrorTooManyOps(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	ops := func(n int) []etcdgw.Op {
		out := make([]etcdgw.Op, n)
		for i := range out {
			out[i] = etcdgw.OpPut(fmt.Sprintf("k%03d", i), i)
		}
		return out
	}
	_, err := c.Txn(ctx).Then(ops(128)...).Commit()
	require.NoError(t, err, "128 ops is etcd's default limit")

	_, err = c.Txn(ctx).Then(ops(129)...).Commit()
	e := asError(t, err)
	assertSentinels(t, err, "ErrTooManyOps")
	assert.Equal(t, 3, e.Code)
	assert.Equal(t, 400, e.HTTPStatus)
	assert.Equal(t, "etcdserver: too many operations in txn request", e.Message)
	assert.Equal(t, shared.Endpoint(), e.Endpoint)
}

func TestRealErrorDuplicateKey(t *testing.T) {
	c, _ := prefixedClient(t)
	_, err := c.Txn(testCtx(t)).Then(etcdgw.OpPut("a", 1), etcdgw.OpPut("a", 2)).Commit()
	e := asError(t, err)
	assertSentinels(t, err, "ErrDuplicateKey")
	assert.Equal(t, 3, e.Code)
	assert.Equal(t, 400, e.HTTPStatus)
}

func TestRealErrorRequestTooLarge(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)

	// Over --max-request-bytes (1.5 MiB): etcd itself refuses it.
	_, err := c.Set(ctx, "big", make([]byte, 2_000_000))
	e := asError(t, err)
	assertSentinels(t, err, "ErrRequestTooLarge")
	assert.Equal(t, 3, e.Code)
	assert.Equal(t, 400, e.HTTPStatus)
	assert.Equal(t, "etcdserver: request is too large", e.Message)

	// Over the gRPC limit (max-request-bytes + 512 KiB): the gateway's own
	// gRPC connection refuses it with ResourceExhausted.
	_, err = c.Set(ctx, "bigger", make([]byte, 3_000_000))
	e = asError(t, err)
	assertSentinels(t, err, "ErrRequestTooLarge")
	assert.Equal(t, 8, e.Code)
	assert.Equal(t, 429, e.HTTPStatus)
	assert.Contains(t, e.Message, "larger than max")

	got, err := c.ReadDir(ctx, "", etcdgw.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, got.Count, "nothing was written")
}

func TestRealErrorLeaseNotFound(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	const unknown = etcdgw.LeaseID(0x7eadbeef12345)

	_, err := c.Set(ctx, "k", "v", etcdgw.WithLease(unknown))
	e := asError(t, err)
	assertSentinels(t, err, "ErrLeaseNotFound")
	assert.Equal(t, 5, e.Code)
	assert.Equal(t, 404, e.HTTPStatus)
	assert.Equal(t, "etcdserver: requested lease not found", e.Message)

	_, err = c.Revoke(ctx, unknown)
	e = asError(t, err)
	assertSentinels(t, err, "ErrLeaseNotFound")
	assert.Equal(t, 5, e.Code)
	assert.Equal(t, 404, e.HTTPStatus)

	_, err = c.KeepAliveOnce(ctx, unknown)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
}

func TestWriteTimeoutIsOutcomeUnknown(t *testing.T) {
	// etcd proposed the write and stopped waiting: it may still apply, so the
	// write is neither retried nor reported as surely failed. A read with the
	// same answer is retried and fails as plainly unavailable.
	for _, msg := range []string{"etcdserver: request timed out", "etcdserver: request timed out, possibly due to previous leader failure", "etcdserver: leader changed", "etcdserver: server stopped"} {
		var calls atomic.Int32
		c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			answer(503, `{"error":"`+msg+`","code":14,"message":"`+msg+`"}`)(w, r)
		}, etcdgw.WithHealthCheck(0, 1))
		ctx := testCtx(t)
		_, err := c.Set(ctx, "k", "v")
		require.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown, msg)
		require.ErrorIs(t, err, etcdgw.ErrUnavailable, msg)
		var e *etcdgw.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 503, e.HTTPStatus)
		assert.Equal(t, int32(1), calls.Load(), "a write is sent once")
		calls.Store(0)

		_, err = c.Get(ctx, "k")
		assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
		assert.NotErrorIs(t, err, etcdgw.ErrOutcomeUnknown, "a read has no outcome to lose")
		assert.Equal(t, int32(1), calls.Load(), "one endpoint, tried once")
	}
}
