package etcdgw_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// rangeAnswer is a /kv/range answer holding keys, with count and more as
// given.
func rangeAnswer(count string, more bool, keys ...string) string {
	var kvs []string
	for _, k := range keys {
		kvs = append(kvs, fmt.Sprintf(`{"key":%q,"value":"dg==","mod_revision":"2"}`, base64.StdEncoding.EncodeToString([]byte(k))))
	}
	return fmt.Sprintf(`{"header":{"revision":"7"},"kvs":[%s],"more":%v,"count":%s}`, strings.Join(kvs, ","), more, count)
}

// TestReadDirAbsurdCount answers ReadDir, as something that is not etcd might,
// with counts no directory has: the client returns what the answer holds,
// without a panic and without reserving room for the count.
func TestReadDirAbsurdCount(t *testing.T) {
	for _, count := range []string{`"9223372036854775807"`, `"268435456"`, `"-5"`, `-1`, `"0"`} {
		t.Run(count, func(t *testing.T) {
			c, _ := fakeGateway(t, answer(200, rangeAnswer(count, false, "d/a", "d/b")))
			ctx := testCtx(t)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := c.ReadDir(ctx, "d/")
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			assert.Equal(t, []string{"d/a", "d/b"}, keys(r.Kvs))
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "allocated for the count, not for the answer")
		})
	}
}

// TestReadDirPagesThatDoNotAdvance answers ReadDir's pages as something that
// is not etcd might: the same page again, keys out of order, keys out of the
// range. Each is a malformed answer, not a loop or a silently wrong directory.
func TestReadDirPagesThatDoNotAdvance(t *testing.T) {
	tests := map[string][]string{
		"SamePageAgain": {rangeAnswer(`"4"`, true, "d/a", "d/b"), rangeAnswer(`"4"`, true, "d/a", "d/b")},
		"OutOfOrder":    {rangeAnswer(`"3"`, false, "d/b", "d/a")},
		"OutOfRange":    {rangeAnswer(`"2"`, false, "d/a", "e/a")},
		"BackInSecond":  {rangeAnswer(`"4"`, true, "d/a", "d/c"), rangeAnswer(`"4"`, false, "d/b", "d/d")},
	}
	for name, pages := range tests {
		t.Run(name, func(t *testing.T) {
			served := 0
			c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, pages[min(served, len(pages)-1)])
				served++
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.ReadDir(ctx, "d/")
			require.ErrorIs(t, err, etcdgw.ErrMalformedResponse)
			assert.NoError(t, ctx.Err(), "it failed at once, not at the deadline")
			assert.LessOrEqual(t, served, len(pages), "no page asked again")
		})
	}
	// The largest count that is no absurd one still reads.
	c, _ := fakeGateway(t, answer(200, rangeAnswer(fmt.Sprint(int64(math.MaxInt32)), false, "d/a")))
	r, err := c.ReadDir(testCtx(t), "d/")
	require.NoError(t, err)
	assert.Equal(t, int64(math.MaxInt32), r.Count)
}

// recorded starts a recording proxy in front of the server, closed at the end
// of the test.
func recorded(t *testing.T, endpoint string) *etcdtest.RecordingProxy {
	t.Helper()
	p, err := etcdtest.NewRecordingProxy(endpoint, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}
