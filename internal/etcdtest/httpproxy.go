package etcdtest

import (
	"bytes"
	"context"
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
	"sync/atomic"
	"time"
)

// Reply is an answer that an HTTPProxy sends in etcd's place.
type Reply struct {
	// Path limits the reply to requests for this URL path, such as
	// "/v3/kv/put"; empty means every request.
	Path string
	// Status is the HTTP status.
	Status int
	// ContentType is the Content-Type header; empty sends none.
	ContentType string
	// Body is the body, sent as is.
	Body string
	// Times is how many requests get the reply; 0 means every request
	// until Clear.
	Times int
}

// Replies of the proxies and members that stand between a client and etcd.
var (
	// ReplyBadGateway is nginx's 502 when its upstream fails.
	ReplyBadGateway = Reply{Status: http.StatusBadGateway, ContentType: "text/html",
		Body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"}
	// ReplyServiceUnavailable is Envoy's 503 when no upstream is healthy.
	ReplyServiceUnavailable = Reply{Status: http.StatusServiceUnavailable, ContentType: "text/plain",
		Body: "no healthy upstream"}
	// ReplyGatewayTimeout is nginx's 504 when its upstream does not answer
	// in time.
	ReplyGatewayTimeout = Reply{Status: http.StatusGatewayTimeout, ContentType: "text/html",
		Body: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"}
	// ReplyClientConnClosing is the gateway of a stopping etcd member: its
	// own gRPC connection to etcd is closing (code 1, Canceled, which
	// grpc-gateway sends as 499; older gateways send 408).
	ReplyClientConnClosing = Reply{Status: 499, ContentType: "application/json",
		Body: `{"code":1,"message":"grpc: the client connection is closing"}`}
)

// HTTPProxyConfig configures an HTTPProxy.
type HTTPProxyConfig struct {
	// TargetTLS is the client configuration for an https target, such as
	// Certs.ClientTLSConfig(); nil for an http one.
	TargetTLS *tls.Config
	// Certs, when not nil, makes the proxy serve https with the server
	// certificate of these certificates, over HTTP/2 and HTTP/1.1; nil
	// serves plain HTTP/1.1.
	Certs *Certs
	// NoWebSocket makes the proxy answer a WebSocket upgrade 400 Bad
	// Request (or NoWebSocketStatus), like a proxy that does not pass
	// WebSocket.
	NoWebSocket       bool
	NoWebSocketStatus int
}

// HTTPProxy is an HTTP reverse proxy on a loopback port in front of an etcd
// client URL, which injects the faults of the L7 load balancers and proxies
// that stand between clients and etcd: it answers for etcd (Reply), ends
// streams in the middle of a line (CutLines), resets answers half-way
// (ResetAnswers), cuts streams that stay idle (SetIdleTimeout) and cuts
// every stream at once (CutStreams). Answers stream through it unbuffered.
// Its methods are safe for concurrent use.
type HTTPProxy struct {
	addr      string
	scheme    string
	transport *http.Transport
	srv       *http.Server
	served    chan struct{} // closed when Serve returns
	handlers  sync.WaitGroup
	cuts      atomic.Int64
	noWS      bool
	noWSCode  int
	refusedWS atomic.Int64

	mu        sync.Mutex
	closing   bool
	counts    map[string]int
	replies   []Reply
	lineCuts  []pathCut
	resets    []pathCut
	idle      time.Duration
	before    func(*http.Request)
	live      map[*faultWriter]struct{}
	closeOnce sync.Once
	closeErr  error
}

// pathCut is a pending CutLines or ResetAnswers.
type pathCut struct {
	path  string
	times int // 0: until Clear
}

// NewHTTPProxy starts a proxy forwarding to target, an endpoint URL such as
// [Server.Endpoint]. The caller must Close it.
func NewHTTPProxy(target string, cfg HTTPProxyConfig) (*HTTPProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: proxy target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("etcdtest: proxy target %q: want http://host:port or https://host:port", target)
	}
	var serverTLS *tls.Config
	if cfg.Certs != nil {
		cert, err := tls.LoadX509KeyPair(cfg.Certs.ServerCertFile, cfg.Certs.ServerKeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdtest: proxy certificate: %w", err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: http proxy listen: %w", err)
	}
	p := &HTTPProxy{
		addr:   ln.Addr().String(),
		scheme: "http",
		transport: &http.Transport{
			TLSClientConfig:   cfg.TargetTLS.Clone(),
			ForceAttemptHTTP2: true,
		},
		served:   make(chan struct{}),
		noWS:     cfg.NoWebSocket,
		noWSCode: cfg.NoWebSocketStatus,
		counts:   make(map[string]int),
		live:     make(map[*faultWriter]struct{}),
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport: p.transport,
		// Flush every write at once: watch answers are streams of lines.
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			if fw, ok := w.(*faultWriter); ok && fw.aborted.Load() {
				panic(http.ErrAbortHandler)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { p.serve(rp, w, req) }),
		ErrorLog:  log.New(io.Discard, "", 0),
		TLSConfig: serverTLS,
	}
	go func() {
		defer close(p.served)
		if serverTLS != nil {
			p.srv.ServeTLS(ln, "", "")
			return
		}
		p.srv.Serve(ln)
	}()
	if serverTLS != nil {
		p.scheme = "https"
	}
	return p, nil
}

// Addr returns the host:port the proxy listens on.
func (p *HTTPProxy) Addr() string { return p.addr }

// Endpoint returns the proxy's URL: http:// or, with certificates,
// https:// and Addr().
func (p *HTTPProxy) Endpoint() string { return p.scheme + "://" + p.addr }

// Count returns how many requests for path the proxy has received, answered
// by a Reply or forwarded.
func (p *HTTPProxy) Count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[path]
}

// Requests returns how many requests the proxy has received in all.
func (p *HTTPProxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

// Cuts returns how many answers the proxy has cut or reset in all.
func (p *HTTPProxy) Cuts() int64 { return p.cuts.Load() }

// Reply makes the proxy answer requests itself with r instead of
// forwarding them. Replies queue: a request gets the first one that
// matches its path and has times left.
func (p *HTTPProxy) Reply(r Reply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replies = append(p.replies, r)
}

// CutLines makes the proxy cut the next n lines that answers to path pass
// on, live answers included (empty path: any path; n 0: every line until
// Clear), in their middle: it passes the
// first half of the line on, then ends the answer cleanly, with the end of
// a chunked body or an HTTP/2 END_STREAM, as a proxy that ends a stream at
// a buffer's boundary would. Each answer takes at most one cut.
func (p *HTTPProxy) CutLines(path string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lineCuts = append(p.lineCuts, pathCut{path, n})
}

// ResetAnswers makes the proxy reset the next n answers to path (empty: any
// path; n 0: every answer until Clear) in their middle: it passes the
// headers and the first half of the first bytes of the body on, then
// aborts, which closes an HTTP/1.1 connection and resets an HTTP/2 stream.
func (p *HTTPProxy) ResetAnswers(path string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resets = append(p.resets, pathCut{path, n})
}

// SetIdleTimeout makes the proxy abort every answer that passes no byte on
// for d, live answers included, as an L7 load balancer's idle timeout does;
// 0 turns it off.
func (p *HTTPProxy) SetIdleTimeout(d time.Duration) {
	p.mu.Lock()
	p.idle = d
	live := make([]*faultWriter, 0, len(p.live))
	for fw := range p.live {
		live = append(live, fw)
	}
	p.mu.Unlock()
	for _, fw := range live {
		fw.setIdle(d)
	}
}

// SetBeforeForward has f called with each request about to be forwarded to
// etcd, after Reply and before anything is sent; it may block to hold the
// request back. nil removes it.
func (p *HTTPProxy) SetBeforeForward(f func(*http.Request)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before = f
}

// CutStreams aborts every answer in progress, as CutAll does to a TCP
// proxy's connections, but per HTTP request.
func (p *HTTPProxy) CutStreams() {
	p.mu.Lock()
	live := make([]*faultWriter, 0, len(p.live))
	for fw := range p.live {
		live = append(live, fw)
	}
	p.mu.Unlock()
	for _, fw := range live {
		fw.abort()
	}
}

// Clear removes every pending Reply, CutLines and ResetAnswers, the idle
// timeout (of live answers too) and the SetBeforeForward function. Answers
// in progress go on.
func (p *HTTPProxy) Clear() {
	p.mu.Lock()
	p.replies, p.lineCuts, p.resets = nil, nil, nil
	p.before = nil
	p.mu.Unlock()
	p.SetIdleTimeout(0)
}

// Close stops the proxy, ending every answer in progress, and waits for its
// handlers. It is idempotent.
func (p *HTTPProxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		err := p.srv.Close()
		<-p.served
		p.handlers.Wait()
		p.transport.CloseIdleConnections()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = fmt.Errorf("etcdtest: close http proxy: %w", err)
		}
	})
	return p.closeErr
}

// take returns the first entry of list that matches path, counting its use,
// and the list without the entries used up.
func take(list []pathCut, path string) (bool, []pathCut) {
	for i, c := range list {
		if c.path != "" && c.path != path {
			continue
		}
		if c.times == 1 {
			return true, append(list[:i:i], list[i+1:]...)
		}
		if c.times > 1 {
			list[i].times--
		}
		return true, list
	}
	return false, list
}

// admit counts req and decides its fate, or reports false when the proxy is
// closing.
func (p *HTTPProxy) admit(req *http.Request, fw *faultWriter) (reply *Reply, before func(*http.Request), idle time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, nil, 0, false
	}
	p.handlers.Add(1)
	path := req.URL.Path
	p.counts[path]++
	for i, r := range p.replies {
		if r.Path != "" && r.Path != path {
			continue
		}
		switch {
		case r.Times == 1:
			p.replies = append(p.replies[:i:i], p.replies[i+1:]...)
		case r.Times > 1:
			p.replies[i].Times--
		}
		return &r, nil, 0, true
	}
	fw.path = path
	fw.reset, p.resets = take(p.resets, path)
	p.live[fw] = struct{}{}
	return nil, p.before, p.idle, true
}

// takeLineCut reports whether an answer to path takes a pending CutLines
// cut.
func (p *HTTPProxy) takeLineCut(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ok bool
	ok, p.lineCuts = take(p.lineCuts, path)
	return ok
}

// RefusedUpgrades returns how many WebSocket upgrades the proxy refused
// (HTTPProxyConfig.NoWebSocket).
func (p *HTTPProxy) RefusedUpgrades() int64 { return p.refusedWS.Load() }

func (p *HTTPProxy) serve(rp *httputil.ReverseProxy, w http.ResponseWriter, req *http.Request) {
	if p.noWS && req.Header.Get("Upgrade") != "" {
		p.refusedWS.Add(1)
		p.mu.Lock()
		p.counts[req.URL.Path]++
		p.mu.Unlock()
		code := p.noWSCode
		if code == 0 {
			code = http.StatusBadRequest
		}
		http.Error(w, "etcdtest: no WebSocket through this proxy", code)
		return
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	fw := &faultWriter{ResponseWriter: w, p: p, cancel: cancel}
	reply, before, idle, ok := p.admit(req, fw)
	if !ok {
		http.Error(w, "etcdtest: proxy is closing", http.StatusServiceUnavailable)
		return
	}
	defer p.handlers.Done()
	if reply != nil {
		if reply.ContentType != "" {
			w.Header().Set("Content-Type", reply.ContentType)
		}
		w.WriteHeader(reply.Status)
		io.WriteString(w, reply.Body)
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.live, fw)
		p.mu.Unlock()
		fw.stopTimer()
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler && fw.cleanEnd.Load() {
				return // CutLines: end the answer as if etcd had
			}
			panic(r)
		}
	}()
	if before != nil {
		before(req)
	}
	fw.setIdle(idle)
	// A watch reads further requests from the body while its answer
	// streams, which HTTP/1.1 servers do not allow by default.
	_ = http.NewResponseController(w).EnableFullDuplex()
	rp.ServeHTTP(fw, req.WithContext(ctx))
	if fw.aborted.Load() && !fw.cleanEnd.Load() {
		panic(http.ErrAbortHandler)
	}
}

// errCutByProxy ends the copy of an answer that the proxy cuts.
var errCutByProxy = errors.New("etcdtest: answer cut by the proxy")

// faultWriter passes an answer on to the client and cuts it as the proxy
// was told to.
type faultWriter struct {
	http.ResponseWriter
	p      *HTTPProxy
	cancel context.CancelFunc // ends the request to etcd

	// Set by admit before the answer starts.
	path  string
	reset bool

	mu      sync.Mutex // guards idle, timer, done, cutLine and pending
	idle    time.Duration
	timer   *time.Timer
	done    bool   // the handler has ended: no more timers
	cutLine bool   // this answer has taken a CutLines cut
	pending []byte // the line being cut, held back

	aborted  atomic.Bool // the proxy ends this answer
	cleanEnd atomic.Bool // ... and ends it cleanly
}

func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

func (fw *faultWriter) Flush() { _ = http.NewResponseController(fw.ResponseWriter).Flush() }

// setIdle (re)starts the idle timer with d, or stops it for 0.
func (fw *faultWriter) setIdle(d time.Duration) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.done {
		return
	}
	fw.idle = d
	if fw.timer != nil {
		fw.timer.Stop()
		fw.timer = nil
	}
	if d > 0 {
		fw.timer = time.AfterFunc(d, fw.abort)
	}
}

func (fw *faultWriter) stopTimer() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.done = true
	if fw.timer != nil {
		fw.timer.Stop()
	}
}

// abort ends the answer with an error: the request to etcd is cancelled,
// which makes the reverse proxy abort the handler.
func (fw *faultWriter) abort() {
	if fw.aborted.CompareAndSwap(false, true) {
		fw.p.cuts.Add(1)
		fw.cancel()
	}
}

func (fw *faultWriter) Write(b []byte) (int, error) {
	if fw.aborted.Load() {
		return 0, errCutByProxy
	}
	fw.mu.Lock()
	if fw.timer != nil && fw.idle > 0 {
		fw.timer.Reset(fw.idle)
	}
	if !fw.cutLine {
		fw.cutLine = fw.p.takeLineCut(fw.path)
	}
	cutLine := fw.cutLine
	fw.mu.Unlock()
	switch {
	case fw.reset:
		half := b[:len(b)/2]
		fw.ResponseWriter.Write(half)
		fw.Flush()
		fw.abort()
		return len(half), errCutByProxy
	case cutLine:
		fw.mu.Lock()
		fw.pending = append(fw.pending, b...)
		i := bytes.IndexByte(fw.pending, '\n')
		line := fw.pending
		fw.mu.Unlock()
		if i < 0 {
			return len(b), nil
		}
		fw.ResponseWriter.Write(line[:max(i/2, min(i, 1))])
		fw.Flush()
		fw.cleanEnd.Store(true)
		fw.abort()
		return len(b), errCutByProxy
	}
	return fw.ResponseWriter.Write(b)
}
