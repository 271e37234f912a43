package etcdtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// RecordedRequest is what a recording proxy saw of one request.
type RecordedRequest struct {
	Method string
	// Host is the Host header as the client sent it.
	Host string
	// Path is the URL path, such as "/v3/kv/range".
	Path string
	// Header is a copy of the request headers.
	Header http.Header
}

// UnixProxy is an HTTP server on a unix socket that forwards every request
// to an etcd endpoint and records it. Tests use it to check what a client
// dialing a unix socket sends. Its methods are safe for concurrent use.
type UnixProxy struct {
	rec  *recorder
	path string
}

// NewUnixProxy listens on the unix socket socketPath and forwards requests
// to target, an endpoint URL such as [Server.Endpoint]. tlsCfg is the
// client configuration for an https target and may be nil otherwise. The
// socket speaks plain HTTP/1.1, and the client's Host header reaches etcd
// unchanged. The caller must Close the proxy.
//
// Socket paths are limited to about 100 bytes, which a t.TempDir path
// may exceed.
func NewUnixProxy(socketPath, target string, tlsCfg *tls.Config) (*UnixProxy, error) {
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: unix proxy listen: %w", err)
	}
	rec, err := newRecorder(ln, target, tlsCfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &UnixProxy{rec: rec, path: socketPath}, nil
}

// SocketPath returns the path of the unix socket.
func (p *UnixProxy) SocketPath() string { return p.path }

// Requests returns a copy of the requests received so far, oldest first.
func (p *UnixProxy) Requests() []RecordedRequest { return p.rec.requests() }

// Count returns how many requests for path have been received.
func (p *UnixProxy) Count(path string) int { return p.rec.count(path) }

// Reset forgets the recorded requests.
func (p *UnixProxy) Reset() { p.rec.reset() }

// Close stops the server, ending any streaming response, and removes the
// socket. It is idempotent.
func (p *UnixProxy) Close() error { return p.rec.close() }

// RecordingProxy is an HTTP reverse proxy on a loopback TCP port that
// forwards every request to an etcd endpoint and records it, for tests
// that count requests per path, such as calls to /v3/auth/authenticate.
// Its methods are safe for concurrent use.
type RecordingProxy struct {
	rec  *recorder
	addr string
}

// NewRecordingProxy starts a recording proxy forwarding to target, an
// endpoint URL such as [Server.Endpoint]. tlsCfg is the client
// configuration for an https target and may be nil otherwise. The proxy
// itself speaks plain HTTP/1.1. The caller must Close it.
func NewRecordingProxy(target string, tlsCfg *tls.Config) (*RecordingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: recording proxy listen: %w", err)
	}
	rec, err := newRecorder(ln, target, tlsCfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &RecordingProxy{rec: rec, addr: ln.Addr().String()}, nil
}

// Addr returns the host:port the proxy listens on.
func (p *RecordingProxy) Addr() string { return p.addr }

// Endpoint returns the proxy's URL, "http://" + Addr().
func (p *RecordingProxy) Endpoint() string { return "http://" + p.addr }

// Requests returns a copy of the requests received so far, oldest first.
func (p *RecordingProxy) Requests() []RecordedRequest { return p.rec.requests() }

// Count returns how many requests for path have been received.
func (p *RecordingProxy) Count(path string) int { return p.rec.count(path) }

// Reset forgets the recorded requests.
func (p *RecordingProxy) Reset() { p.rec.reset() }

// Close stops the proxy, ending any streaming response. It is idempotent.
func (p *RecordingProxy) Close() error { return p.rec.close() }

// recorder is the reverse proxy shared by UnixProxy and RecordingProxy.
type recorder struct {
	transport *http.Transport
	srv       *http.Server
	served    chan struct{} // closed when Serve returns
	handlers  sync.WaitGroup

	mu      sync.Mutex
	reqs    []RecordedRequest
	counts  map[string]int
	closing bool

	closeOnce sync.Once
	closeErr  error
}

func newRecorder(ln net.Listener, target string, tlsCfg *tls.Config) (*recorder, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: proxy target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("etcdtest: proxy target %q: want http://host:port or https://host:port", target)
	}
	r := &recorder{
		transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()},
		served:    make(chan struct{}),
		counts:    make(map[string]int),
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Pass the client's Host header on, so etcd sees it too.
			pr.Out.Host = pr.In.Host
		},
		Transport: r.transport,
		// Flush every write at once: watch and keepalive responses are
		// streams of JSON lines that must not wait in a buffer.
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	r.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !r.record(req) {
				http.Error(w, "etcdtest: proxy is closing", http.StatusServiceUnavailable)
				return
			}
			defer r.handlers.Done()
			// A watch reads further requests from the body while its
			// response streams, which HTTP/1.1 servers do not allow by
			// default.
			_ = http.NewResponseController(w).EnableFullDuplex()
			rp.ServeHTTP(w, req)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(r.served)
		r.srv.Serve(ln)
	}()
	return r, nil
}

// record notes req and counts it as a handler in flight, unless the proxy
// is closing.
func (r *recorder) record(req *http.Request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.handlers.Add(1)
	r.reqs = append(r.reqs, RecordedRequest{
		Method: req.Method,
		Host:   req.Host,
		Path:   req.URL.Path,
		Header: req.Header.Clone(),
	})
	r.counts[req.URL.Path]++
	return true
}

func (r *recorder) requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := make([]RecordedRequest, len(r.reqs))
	for i, req := range r.reqs {
		req.Header = req.Header.Clone()
		reqs[i] = req
	}
	return reqs
}

func (r *recorder) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[path]
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
	clear(r.counts)
}

// close closes the server and every connection it holds, which cancels the
// requests in flight, waits for their handlers and then drops the
// connections to the target.
func (r *recorder) close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		err := r.srv.Close()
		<-r.served
		r.handlers.Wait()
		r.transport.CloseIdleConnections()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			r.closeErr = fmt.Errorf("etcdtest: close proxy: %w", err)
		}
	})
	return r.closeErr
}
