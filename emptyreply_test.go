package etcdgw_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

// fake34 is a gateway that says it is etcd 3.4.23; buggy makes it answer every
// error with an empty reply, as the release built with etcd's own go.mod did.
func fake34(t *testing.T, buggy bool) (*httptest.Server, *atomic.Int32) {
	var drops atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fail := func(status int, msg string) {
			if buggy {
				drops.Add(1)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			w.WriteHeader(status)
			io.WriteString(w, `{"error":"`+msg+`","message":"`+msg+`","code":3}`)
		}
		switch {
		case r.URL.Path == "/version":
			io.WriteString(w, `{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}`)
		case r.URL.Path == "/v3/kv/range" && strings.Contains(string(body), `"revision"`):
			fail(400, "etcdserver: mvcc: required revision is a future revision")
		case r.URL.Path == "/v3/kv/range" && string(body) == "{}":
			fail(400, "etcdserver: key is not provided")
		case r.URL.Path == "/v3/kv/range":
			io.WriteString(w, `{"header":{"revision":"7"}}`)
		default:
			http.NotFound(w, r)
		}
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, &drops
}

func TestEmptyReplyOf3423IsAnErrorAnswer(t *testing.T) {
	s, drops := fake34(t, true)
	c := newClientOf(t, s.URL)
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k", etcdgw.WithRev(99))
	var e *etcdgw.Error
	require.True(t, errors.As(err, &e), "got %v", err)
	assert.Contains(t, e.Message, "3.4.23")
	assert.Equal(t, s.URL, e.Endpoint)
	assert.False(t, errors.Is(err, etcdgw.ErrNoHealthyEndpoint))
	// The endpoint was not marked as failed: the next call goes through.
	r, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(7), r.Header.Revision)
	// One drop for the call, one for the probe that confirmed the bug; the
	// answer is remembered.
	assert.Equal(t, int32(2), drops.Load())
	_, err = c.Get(ctx, "k", etcdgw.WithRev(99))
	require.True(t, errors.As(err, &e))
	assert.Equal(t, int32(3), drops.Load())
}

func TestClosedConnectionOnAFixed3423IsAFailure(t *testing.T) {
	s, _ := fake34(t, false)
	c := newClientOf(t, s.URL)
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k", etcdgw.WithRev(99))
	assert.ErrorIs(t, err, etcdgw.ErrFutureRev, "Debian's 3.4.23 answers errors properly")
}
