package etcdtest

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newUnixProxy starts a unix proxy to s and closes it when t ends.
func newUnixProxy(t *testing.T, s *Server) *UnixProxy {
	t.Helper()
	var cfg *tls.Config
	if c := s.Certs(); c != nil {
		var err error
		if cfg, err = c.ClientTLSConfig(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := NewUnixProxy(filepath.Join(shortTempDir(t), "etcd.sock"), s.Endpoint(), cfg)
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

func TestUnixProxyRecordsRequests(t *testing.T) {
	s := NewServer(t, Config{})
	p := newUnixProxy(t, s)
	gw := newUnixGateway(t, "http://etcd.test:2379", p.SocketPath())
	gw.header.Set("X-Extra", "kept")

	gw.put("unix", "1")
	reqs := p.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() = %+v, want 1 request", reqs)
	}
	got := reqs[0]
	if got.Method != http.MethodPost || got.Host != "etcd.test:2379" || got.Path != "/v3/kv/put" {
		t.Errorf("recorded %s %s %s, want POST etcd.test:2379 /v3/kv/put", got.Method, got.Host, got.Path)
	}
	if v := got.Header.Get("X-Extra"); v != "kept" {
		t.Errorf("recorded X-Extra = %q, want kept", v)
	}
	if n := p.Count("/v3/kv/put"); n != 1 {
		t.Errorf("Count(/v3/kv/put) = %d, want 1", n)
	}
	// The recorded headers are a copy.
	reqs[0].Header.Set("X-Extra", "changed")
	if v := p.Requests()[0].Header.Get("X-Extra"); v != "kept" {
		t.Errorf("X-Extra after changing the returned copy = %q, want kept", v)
	}

	p.Reset()
	if reqs := p.Requests(); len(reqs) != 0 || p.Count("/v3/kv/put") != 0 {
		t.Errorf("after Reset: Requests() = %+v, Count = %d, want none", reqs, p.Count("/v3/kv/put"))
	}
}

func TestUnixProxyStreamsWatch(t *testing.T) {
	s := NewServer(t, Config{})
	p := newUnixProxy(t, s)
	gw := newUnixGateway(t, "http://127.0.0.1", p.SocketPath())

	// startWatch gets the "created" line before any event exists: the
	// proxy must flush each line as it comes.
	w := startWatch(t, gw.client, gw.base, "streamed")
	newGateway(t, s.Endpoint(), nil).put("streamed", "yes")
	if line := w.next(t); !strings.Contains(line, `"events"`) {
		t.Errorf("watch line = %q, want an event", line)
	}

	// Close ends the stream and removes the socket.
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.wait(t); err == nil {
		t.Error("watch ended cleanly after Close, want a read error")
	}
	if _, err := os.Stat(p.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v, want removed", err)
	}
}

func TestUnixProxyTLSTarget(t *testing.T) {
	s := NewServer(t, Config{ClientCertAuth: true})
	p := newUnixProxy(t, s)
	gw := newUnixGateway(t, "http://etcd.test", p.SocketPath())
	gw.put("tls", "through unix")
	if value, _, _ := gw.get("tls"); value != "through unix" {
		t.Errorf("range over the unix proxy to an mTLS server = %q, want through unix", value)
	}
	if got := p.Requests()[0].Host; got != "etcd.test" {
		t.Errorf("recorded Host = %q, want etcd.test", got)
	}
}

func TestRecordingProxyCountsPaths(t *testing.T) {
	s := NewServer(t, Config{})
	if err := EnableAuth(s.Endpoint(), nil, "rootpw"); err != nil {
		t.Fatal(err)
	}
	p, err := NewRecordingProxy(s.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, want := p.Endpoint(), "http://"+p.Addr(); got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}

	gw := newGateway(t, p.Endpoint(), nil)
	authenticate(t, gw, "root", "rootpw")
	root := authenticate(t, gw, "root", "rootpw")
	root.get("k")

	if got, want := p.Count("/v3/auth/authenticate"), 2; got != want {
		t.Errorf("Count(/v3/auth/authenticate) = %d, want %d", got, want)
	}
	if got, want := p.Count("/v3/kv/range"), 1; got != want {
		t.Errorf("Count(/v3/kv/range) = %d, want %d", got, want)
	}
	reqs := p.Requests()
	if len(reqs) != 3 || reqs[2].Header.Get("Authorization") == "" {
		t.Errorf("Requests() = %+v, want 3 with a token on the last", reqs)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := gw.try(http.MethodGet, "/version", nil); err == nil {
		t.Error("request after Close succeeded, want an error")
	}
}

func TestRecordingProxyBadTarget(t *testing.T) {
	for _, target := range []string{"127.0.0.1:2379", "ftp://127.0.0.1", "http://", "://"} {
		if p, err := NewRecordingProxy(target, nil); err == nil {
			p.Close()
			t.Errorf("NewRecordingProxy(%q) succeeded, want an error", target)
		}
	}
}
