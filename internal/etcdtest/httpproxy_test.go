package etcdtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// newHTTPProxy starts an HTTP proxy to target and closes it when t ends.
func newHTTPProxy(t *testing.T, target string, cfg HTTPProxyConfig) *HTTPProxy {
	t.Helper()
	p, err := NewHTTPProxy(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// rawWatch opens a watch on key through client at base and returns its
// answer, once the created line has been read, with a reader of the rest.
func rawWatch(t *testing.T, client *http.Client, base, key string) (*http.Response, *bufio.Reader) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"create_request": map[string]any{"key": []byte(key)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v3/watch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /v3/watch: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, `"created":true`) {
		t.Fatalf("first watch line = %q, %v; want created", line, err)
	}
	return resp, r
}

func TestHTTPProxyReplies(t *testing.T) {
	s := NewServer(t, Config{})
	p := newHTTPProxy(t, s.Endpoint(), HTTPProxyConfig{})
	if !strings.HasPrefix(p.Endpoint(), "http://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want http://127.0.0.1:port", p.Endpoint())
	}
	gw := newGateway(t, p.Endpoint(), nil)
	gw.put("k", "v")

	bad := ReplyBadGateway
	bad.Path, bad.Times = "/v3/kv/range", 2
	p.Reply(bad)
	p.Reply(ReplyClientConnClosing)
	for i := range 2 {
		status, body := gw.do(http.MethodPost, "/v3/kv/range", map[string]any{"key": []byte("k")})
		if status != http.StatusBadGateway || string(body) != ReplyBadGateway.Body {
			t.Errorf("range %d = %d %q, want the 502 reply", i, status, body)
		}
	}
	// The 502 is used up; the closing reply answers every path.
	for _, path := range []string{"/v3/kv/range", "/version"} {
		status, body := gw.do(http.MethodPost, path, map[string]any{"key": []byte("k")})
		var ge gatewayError
		if err := json.Unmarshal(body, &ge); status != 499 || err != nil || ge.Code != 1 || ge.Message != "grpc: the client connection is closing" {
			t.Errorf("%s = %d %s, want the 499 reply", path, status, body)
		}
	}

	p.Clear()
	if value, _, _ := gw.get("k"); value != "v" {
		t.Errorf("range after Clear = %q, want v", value)
	}
	if got := p.Count("/v3/kv/range"); got != 4 {
		t.Errorf("Count(range) = %d, want 4", got)
	}
	if got := p.Requests(); got != 6 {
		t.Errorf("Requests() = %d, want 6", got)
	}
}

func TestHTTPProxyCutLines(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP1"
		if h2 {
			name = "HTTP2"
		}
		t.Run(name, func(t *testing.T) {
			s := NewServer(t, Config{TLS: h2})
			cfg := HTTPProxyConfig{}
			var tlsCfg *tls.Config
			if h2 {
				var err error
				if tlsCfg, err = s.Certs().ClientTLSConfig(); err != nil {
					t.Fatal(err)
				}
				cfg = HTTPProxyConfig{TargetTLS: tlsCfg, Certs: s.Certs()}
			}
			p := newHTTPProxy(t, s.Endpoint(), cfg)
			tr := &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr}
			resp, r := rawWatch(t, client, p.Endpoint(), "cut")
			if got, want := resp.ProtoMajor, map[bool]int{false: 1, true: 2}[h2]; got != want {
				t.Errorf("watch over HTTP/%d, want HTTP/%d", got, want)
			}

			p.CutLines("/v3/watch", 1) // takes the live watch's next line
			newGateway(t, s.Endpoint(), tlsCfg).put("cut", strings.Repeat("x", 100))
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Errorf("reading the cut watch: %v, want a clean end", err)
			}
			if len(rest) == 0 || bytes.IndexByte(rest, '\n') >= 0 || !strings.HasPrefix(string(rest), `{"result":`) {
				t.Errorf("rest of the cut watch = %q, want the start of the event line and no newline", rest)
			}
			if got := p.Cuts(); got != 1 {
				t.Errorf("Cuts() = %d, want 1", got)
			}

			// The cut is used up: a new watch sees the next event whole.
			_, r = rawWatch(t, client, p.Endpoint(), "cut")
			newGateway(t, s.Endpoint(), tlsCfg).put("cut", "y")
			if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, `"events"`) {
				t.Errorf("next watch line = %q, %v; want the event", line, err)
			}
		})
	}
}

func TestHTTPProxyResetAnswers(t *testing.T) {
	s := NewServer(t, Config{})
	p := newHTTPProxy(t, s.Endpoint(), HTTPProxyConfig{})
	gw := newGateway(t, p.Endpoint(), nil)
	gw.put("k", strings.Repeat("v", 100))

	p.ResetAnswers("/v3/kv/range", 1)
	status, body, err := gw.try(http.MethodPost, "/v3/kv/range", map[string]any{"key": []byte("k")})
	if err == nil || status != http.StatusOK || len(body) == 0 {
		t.Errorf("reset range = %d, %d bytes, %v; want 200, part of the body and an error", status, len(body), err)
	}
	if value, _, _ := gw.get("k"); len(value) != 100 {
		t.Errorf("range after the reset = %q, want the value", value)
	}
	if got := p.Cuts(); got != 1 {
		t.Errorf("Cuts() = %d, want 1", got)
	}
}

func TestHTTPProxyIdleTimeoutAndCutStreams(t *testing.T) {
	s := NewServer(t, Config{})
	p := newHTTPProxy(t, s.Endpoint(), HTTPProxyConfig{})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	// CutStreams aborts a live stream: an error, not a clean end.
	_, r := rawWatch(t, client, p.Endpoint(), "k")
	p.CutStreams()
	if _, err := io.ReadAll(r); err == nil {
		t.Error("watch after CutStreams ended cleanly, want an error")
	}

	// The idle timeout applies to a live stream too.
	_, r = rawWatch(t, client, p.Endpoint(), "k")
	start := time.Now()
	p.SetIdleTimeout(200 * time.Millisecond)
	if _, err := io.ReadAll(r); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("idle watch ended with %v, want the proxy's cut", err)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("idle watch cut after %v, want about the idle timeout", elapsed)
	}
	if got := p.Cuts(); got != 2 {
		t.Errorf("Cuts() = %d, want 2", got)
	}
	// Unary calls are quick enough to pass.
	gw := newGateway(t, p.Endpoint(), nil)
	gw.put("k", "v")
	p.Clear()
}
