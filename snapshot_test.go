package etcdgw_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/etcdgw/etcdgw"
)

func TestSnapshotToFile(t *testing.T) {
	srv := newServer(t, etcdtestConfig{})
	c := newClientOf(t, srv.Endpoint())
	ctx := testCtx(t)
	for i := range 50 {
		_, err := c.Set(ctx, fmt.Sprintf("/snap/%02d", i), bytes.Repeat([]byte{'v'}, 2000))
		require.NoError(t, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "etcd.db")
	var calls int
	var lastDone, lastTotal int64
	n, err := c.SnapshotToFile(ctx, srv.Endpoint(), path, func(done, total int64) {
		calls++
		assert.Greater(t, done, lastDone, "progress goes forward")
		assert.LessOrEqual(t, done, total)
		if lastTotal != 0 {
			assert.Equal(t, lastTotal, total, "the total does not change")
		}
		lastDone, lastTotal = done, total
	})
	require.NoError(t, err)
	assert.Greater(t, calls, 1, "progress after each chunk")
	assert.Equal(t, n, lastDone)
	assert.Equal(t, n, lastTotal)

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, int64(len(b)), n)
	// etcdutl's checks: whole pages and a sha256 of them at the end.
	assert.Equal(t, 32, len(b)%512)
	sum := sha256.Sum256(b[:len(b)-32])
	assert.Equal(t, sum[:], b[len(b)-32:])
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left")

	// What etcdutl snapshot status and restore do first: open the file as a
	// bbolt database and read its keys.
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	found := map[string]bool{}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("key"))
		require.NotNil(t, bk, "the snapshot has etcd's key bucket")
		return bk.ForEach(func(_, v []byte) error {
			var kv mvccpb.KeyValue
			if err := proto.Unmarshal(v, &kv); err != nil {
				return err
			}
			found[string(kv.Key)] = true
			return nil
		})
	}))
	assert.True(t, found["/snap/00"])
	assert.True(t, found["/snap/49"])

	// Snapshot to a writer is the same file.
	var buf bytes.Buffer
	m, err := c.Snapshot(ctx, srv.Endpoint(), &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(buf.Len()), m)
	assert.Equal(t, 32, buf.Len()%512)
}

// fakeSnapshot is a snapshot stream as etcd sends it: data in chunks, each
// message with the bytes remaining after it, then the sha256.
type fakeSnapshot struct {
	data   []byte
	chunk  int
	mutate func(lines []string) []string
}

func (f fakeSnapshot) lines() []string {
	var lines []string
	for off := 0; off < len(f.data); off += f.chunk {
		end := min(off+f.chunk, len(f.data))
		rem := ""
		if r := len(f.data) - end; r > 0 {
			rem = fmt.Sprintf(`"remaining_bytes":"%d",`, r)
		}
		lines = append(lines, fmt.Sprintf(`{"result":{"header":{},%s"blob":%q}}`, rem, base64.StdEncoding.EncodeToString(f.data[off:end])))
	}
	sum := sha256.Sum256(f.data)
	lines = append(lines, fmt.Sprintf(`{"result":{"header":{},"blob":%q}}`, base64.StdEncoding.EncodeToString(sum[:])))
	if f.mutate != nil {
		lines = f.mutate(lines)
	}
	return lines
}

func TestSnapshotStreamsRefused(t *testing.T) {
	data := make([]byte, 512*20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	flip := func(lines []string) []string {
		sum := sha256.Sum256(data)
		other := append([]byte(nil), data...)
		other[700] ^= 1
		f := fakeSnapshot{data: other, chunk: 1000}
		out := f.lines()
		out[len(out)-1] = fmt.Sprintf(`{"result":{"blob":%q}}`, base64.StdEncoding.EncodeToString(sum[:]))
		return out
	}
	tests := []struct {
		name    string
		snap    fakeSnapshot
		raw     string // instead of lines
		status  int
		want    error
		wantMsg string
	}{
		{name: "corrupt byte", snap: fakeSnapshot{data: data, chunk: 1000, mutate: flip}, want: etcdgw.ErrMalformedResponse, wantMsg: "sha256 mismatch"},
		{name: "no checksum", snap: fakeSnapshot{data: data, chunk: 1000, mutate: func(l []string) []string { return l[:len(l)-1] }}, want: etcdgw.ErrMalformedResponse, wantMsg: "ended after"},
		{name: "truncated", snap: fakeSnapshot{data: data, chunk: 1000, mutate: func(l []string) []string { return l[:3] }}, want: etcdgw.ErrMalformedResponse, wantMsg: "ended after"},
		{name: "not whole pages", snap: fakeSnapshot{data: data[:len(data)-1], chunk: 1000}, want: etcdgw.ErrMalformedResponse, wantMsg: "512-byte pages"},
		{name: "cut mid-line", snap: fakeSnapshot{data: data, chunk: 1000, mutate: func(l []string) []string {
			l[4] = l[4][:20]
			return l[:5]
		}}, want: etcdgw.ErrMalformedResponse, wantMsg: "cut"},
		{name: "stream error", snap: fakeSnapshot{data: data, chunk: 1000, mutate: func(l []string) []string {
			return append(l[:2], `{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: server stopped","http_status":"Service Unavailable"}}`)
		}}, want: etcdgw.ErrUnavailable, wantMsg: "server stopped"},
		{name: "malformed", snap: fakeSnapshot{data: data, chunk: 1000, mutate: func(l []string) []string { return append(l[:2], `{"result":{"blob":"%%%"}}`) }}, want: etcdgw.ErrMalformedResponse},
		{name: "empty", raw: "", want: etcdgw.ErrMalformedResponse, wantMsg: "before any data"},
		{name: "refused", raw: `{"code":7,"message":"etcdserver: permission denied"}`, status: 403, want: etcdgw.ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path != "/v3/maintenance/snapshot" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				if tt.status != 0 {
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.raw)
					return
				}
				if tt.raw != "" || tt.snap.data == nil {
					io.WriteString(w, tt.raw)
					return
				}
				lines := tt.snap.lines()
				for i, l := range lines {
					io.WriteString(w, l)
					if i < len(lines)-1 || tt.name != "cut mid-line" {
						io.WriteString(w, "\n")
					}
					w.(http.Flusher).Flush()
				}
			}))
			t.Cleanup(srv.Close)
			c, err := etcdgw.New(etcdgw.WithEndpoints(srv.URL), etcdgw.WithAPIPrefix("/v3"))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })

			_, err = c.Snapshot(testCtx(t), srv.URL, io.Discard)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.wantMsg)

			dir := t.TempDir()
			_, err = c.SnapshotToFile(testCtx(t), srv.URL, filepath.Join(dir, "s.db"), nil)
			require.ErrorIs(t, err, tt.want)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "a refused snapshot leaves no file")
		})
	}

	t.Run("good", func(t *testing.T) {
		f := fakeSnapshot{data: data, chunk: 1000}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, l := range f.lines() {
				io.WriteString(w, l+"\n")
			}
		}))
		t.Cleanup(srv.Close)
		c, err := etcdgw.New(etcdgw.WithEndpoints(srv.URL), etcdgw.WithAPIPrefix("/v3"))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		var buf bytes.Buffer
		n, err := c.Snapshot(testCtx(t), srv.URL, &buf)
		require.NoError(t, err)
		assert.Equal(t, int64(len(data)+32), n)
		assert.Equal(t, data, buf.Bytes()[:len(data)])
	})
}

func TestSnapshotEndsWithCtx(t *testing.T) {
	// A member that sends the first chunk and then nothing: only ctx ends
	// the stream (no WithTimeout default applies), and promptly.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"result":{"remaining_bytes":"1024","blob":"AAAA"}}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := etcdgw.New(etcdgw.WithEndpoints(srv.URL), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithTimeout(10*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int64, 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Snapshot(ctx, srv.URL, writerFunc(func(b []byte) (int, error) {
			got <- int64(len(b))
			return len(b), nil
		}))
		done <- err
	}()
	require.Equal(t, int64(3), <-got)
	select {
	case err := <-done:
		t.Fatalf("Snapshot ended before its ctx: %v", err)
	case <-time.After(200 * time.Millisecond): // twenty times WithTimeout
	}
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Snapshot did not end with its ctx")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
