package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// A server left open in external mode is a process, not a goroutine.
	if err := CheckProcesses(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// gateway talks JSON to etcd's HTTP gateway with nothing but net/http.
type gateway struct {
	t      testing.TB
	client *http.Client
	base   string
	header http.Header // sent with every request
}

// newGateway returns a gateway client for base with its own transport,
// whose connections are closed when t ends so that goleak stays quiet.
func newGateway(t testing.TB, base string, tlsCfg *tls.Config) *gateway {
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &gateway{t: t, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, base: base, header: http.Header{}}
}

// newUnixGateway returns a gateway client that dials the unix socket path
// whatever the URL says, as a client configured with a unix socket does.
func newUnixGateway(t testing.TB, base, path string) *gateway {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &gateway{t: t, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, base: base, header: http.Header{}}
}

// do sends a request and returns the status and body, failing the test on
// transport errors.
func (g *gateway) do(method, path string, body any) (int, []byte) {
	g.t.Helper()
	status, b, err := g.try(method, path, body)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, b
}

func (g *gateway) try(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range g.header {
		req.Header[k] = v
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// wantOK posts body to path, requires 200 and decodes the answer into out
// (when out is not nil).
func (g *gateway) wantOK(path string, body, out any) {
	g.t.Helper()
	status, b := g.do(http.MethodPost, path, body)
	if status != http.StatusOK {
		g.t.Fatalf("POST %s: status %d, want 200; body %s", path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			g.t.Fatalf("POST %s: decode %s: %v", path, b, err)
		}
	}
}

// put stores key=value and returns the revision of the write.
func (g *gateway) put(key, value string) int64 {
	g.t.Helper()
	var resp struct {
		Header header `json:"header"`
	}
	// []byte fields marshal as std base64, as the gateway wants.
	g.wantOK("/v3/kv/put", map[string]any{"key": []byte(key), "value": []byte(value)}, &resp)
	return resp.Header.Revision
}

// get returns the value of key, whether it exists, and the store revision.
func (g *gateway) get(key string) (value string, found bool, rev int64) {
	g.t.Helper()
	var resp rangeResponse
	g.wantOK("/v3/kv/range", map[string]any{"key": []byte(key)}, &resp)
	if len(resp.Kvs) == 0 {
		return "", false, resp.Header.Revision
	}
	return string(resp.Kvs[0].Value), true, resp.Header.Revision
}

type header struct {
	Revision int64 `json:"revision,string"`
}

type rangeResponse struct {
	Header header `json:"header"`
	Kvs    []struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	} `json:"kvs"`
}

// gatewayError is the body of a failed gateway call.
type gatewayError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// shortTempDir returns a directory whose paths fit in a unix socket name,
// which t.TempDir's long names may not.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "et")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
