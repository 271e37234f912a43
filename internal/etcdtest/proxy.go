package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxyDialTimeout bounds the proxy's dial to its target.
const proxyDialTimeout = 5 * time.Second

// Proxy is a TCP proxy on 127.0.0.1 that forwards raw bytes to a target
// and injects faults: cut connections, refused connections, a black hole,
// connections that hang and late answers. It knows nothing about HTTP or TLS, so a TLS client sees the
// target's certificate. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	addr   string

	ctx    context.Context // cancelled by Close, ends pending dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops and connection goroutines

	mu     sync.Mutex
	ln     net.Listener // nil while refusing
	conns  map[*proxyConn]struct{}
	paused chan struct{} // non-nil while paused, closed by Resume
	closed bool

	limits []int64 // byte limits of the next connections, see CutAfter

	hang  atomic.Bool  // see SetHang
	delay atomic.Int64 // of the target's bytes, in nanoseconds; see SetDelay

	accepted   atomic.Int64
	hung       atomic.Int64
	fromServer atomic.Int64
	toServer   atomic.Int64
	tripped    atomic.Int64
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.client.Close()
		if pc.server != nil { // nil for a hung connection
			pc.server.Close()
		}
	})
}

// NewProxy starts a proxy on a free loopback port forwarding to target, a
// host:port such as [Server.ClientAddr]. The caller must Close it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: proxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		addr:   ln.Addr().String(),
		ctx:    ctx,
		cancel: cancel,
		ln:     ln,
		conns:  make(map[*proxyConn]struct{}),
	}
	p.wg.Go(func() { p.accept(ln) })
	return p, nil
}

// Addr returns the host:port the proxy listens on. It does not change,
// even across SetRefuse.
func (p *Proxy) Addr() string { return p.addr }

// Endpoint returns scheme://Addr(), for example Endpoint("https").
func (p *Proxy) Endpoint(scheme string) string { return scheme + "://" + p.addr }

// Conns returns the number of live proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted returns how many connections the proxy has accepted in all.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// BytesFromServer returns how many bytes the proxy has passed from the
// target to clients.
func (p *Proxy) BytesFromServer() int64 { return p.fromServer.Load() }

// BytesToServer returns how many bytes the proxy has passed from clients
// to the target.
func (p *Proxy) BytesToServer() int64 { return p.toServer.Load() }

// CutAll closes every live connection on both sides at once, as a network
// failure or a server crash would. Connections made afterwards work.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
}

// CutAfter makes the next len(limits) connections end part-way: the i-th of
// them is cut on both sides, as CutAll would, once it has passed limits[i]
// bytes from the target to the client. Later connections are not limited.
// It cuts a stream at a known point of what the server sent, whatever the
// client has read so far.
func (p *Proxy) CutAfter(limits ...int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limits = append(p.limits[:0:0], limits...)
}

// Tripped returns how many connections CutAfter's limits have cut.
func (p *Proxy) Tripped() int64 { return p.tripped.Load() }

// cutConn passes at most left bytes on to Conn, then cuts the connection.
type cutConn struct {
	net.Conn
	left int64
	cut  func()
}

var errCut = errors.New("etcdtest: connection cut by CutAfter")

func (c *cutConn) Write(b []byte) (int, error) {
	if int64(len(b)) < c.left {
		n, err := c.Conn.Write(b)
		c.left -= int64(n)
		return n, err
	}
	n, err := c.Conn.Write(b[:c.left])
	c.left = 0
	c.cut()
	if err == nil {
		err = errCut
	}
	return n, err
}

// SetRefuse makes new connections fail with "connection refused" while
// refuse is true, by closing the listening socket; live connections are
// kept. SetRefuse(false) listens on the same address again, and fails if
// someone else has taken the port meanwhile.
func (p *Proxy) SetRefuse(refuse bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("etcdtest: proxy is closed")
	}
	switch {
	case refuse && p.ln != nil:
		err := p.ln.Close()
		p.ln = nil
		if err != nil {
			return fmt.Errorf("etcdtest: proxy refuse: %w", err)
		}
	case !refuse && p.ln == nil:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("etcdtest: proxy listen again: %w", err)
		}
		p.ln = ln
		p.wg.Go(func() { p.accept(ln) })
	}
	return nil
}

// Pause stops forwarding bytes in both directions without closing
// anything, a black hole: connections stay open, including new ones, and
// what is sent is held back until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == nil {
		p.paused = make(chan struct{})
	}
}

// Resume delivers what Pause held back and forwards again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
}

// SetHang makes the connections accepted from now on hang while hang is
// true, as a member whose process accepts but never answers: the proxy
// reads what the client sends and drops it, never dials the target, never
// sends a byte back and never closes or resets the connection. A hung
// connection stays hung after SetHang(false), until the client closes it,
// CutAll or Close. Live connections are not affected: CutAll first to make
// a client reconnect into the hang.
func (p *Proxy) SetHang(hang bool) { p.hang.Store(hang) }

// Hung returns how many connections SetHang has held in all.
func (p *Proxy) Hung() int64 { return p.hung.Load() }

// SetDelay holds every chunk of bytes the target sends for d before the
// proxy passes it on, on live and new connections alike, so that each
// answer arrives at least d late; the client's bytes are not delayed. A
// zero d stops delaying.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.cancel()
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
	}
	p.mu.Unlock()
	p.CutAll()
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			// The listener was closed by SetRefuse or Close. Accept
			// errors that are not permanent do not happen on loopback.
			return
		}
		p.accepted.Add(1)
		if p.hang.Load() {
			p.wg.Go(func() { p.hold(c) })
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// hold reads and drops what client sends, and answers nothing, until the
// client closes the connection or the proxy cuts it.
func (p *Proxy) hold(client net.Conn) {
	pc := &proxyConn{client: client, done: make(chan struct{})}
	if !p.track(pc) {
		return
	}
	p.hung.Add(1)
	io.Copy(io.Discard, client)
	pc.close()
	p.untrack(pc)
}

// track adds pc to the live connections, or closes it if the proxy is
// closed.
func (p *Proxy) track(pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		pc.close()
		return false
	}
	p.conns[pc] = struct{}{}
	return true
}

func (p *Proxy) untrack(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	d := net.Dialer{Timeout: proxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	pc := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.close()
		return
	}
	p.conns[pc] = struct{}{}
	var limit int64
	if len(p.limits) > 0 {
		limit, p.limits = p.limits[0], p.limits[1:]
	}
	p.mu.Unlock()

	var toClient net.Conn = client
	if limit > 0 {
		toClient = &cutConn{Conn: client, left: limit, cut: func() {
			p.tripped.Add(1)
			pc.close()
		}}
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(pc, server, client, &p.toServer, false) })
	p.pipe(pc, toClient, server, &p.fromServer, true)
	wg.Wait()
	pc.close()
	p.untrack(pc)
}

// pipe copies src to dst until src ends, holding bytes back while the
// proxy is paused, and for SetDelay's delay when they come from the
// target. A clean end of src is passed on as a half close so that the
// other direction can finish; any error closes the pair.
func (p *Proxy) pipe(pc *proxyConn, dst, src net.Conn, count *atomic.Int64, fromTarget bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromTarget && !p.waitDelay(pc, time.Now()) {
				return
			}
			if !p.waitResumed(pc) {
				return
			}
			// Counted before the write: once the other side has read the
			// bytes, a test must see them counted.
			count.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				pc.close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return
				}
			}
			pc.close()
			return
		}
	}
}

// waitDelay blocks until SetDelay's delay has passed since read, and
// reports false if the connection is closed meanwhile.
func (p *Proxy) waitDelay(pc *proxyConn, read time.Time) bool {
	d := time.Duration(p.delay.Load())
	if d <= 0 {
		return true
	}
	t := time.NewTimer(time.Until(read.Add(d)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-pc.done:
		return false
	}
}

// waitResumed blocks while the proxy is paused, and reports false if the
// connection is closed meanwhile.
func (p *Proxy) waitResumed(pc *proxyConn) bool {
	for {
		p.mu.Lock()
		paused := p.paused
		p.mu.Unlock()
		if paused == nil {
			return true
		}
		select {
		case <-paused:
		case <-pc.done:
			return false
		}
	}
}
