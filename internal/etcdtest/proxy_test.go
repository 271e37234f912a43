package etcdtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watchStream is a watch on the gateway, read line by line in the
// background.
type watchStream struct {
	lines chan string // closed when the stream ends
	mu    sync.Mutex
	err   error // why the stream ended
}

// startWatch watches key through client at base and waits for the
// "created" line. The watch ends when t does.
func startWatch(t *testing.T, client *http.Client, base, key string) *watchStream {
	t.Helper()
	body, err := json.Marshal(map[string]any{"create_request": map[string]any{"key": []byte(key)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v3/watch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("POST /v3/watch: %v", err)
	}
	w := &watchStream{lines: make(chan string)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(w.lines)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			select {
			case w.lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	if line := w.next(t); !strings.Contains(line, `"created":true`) {
		t.Fatalf("first watch line = %q, want created", line)
	}
	return w
}

// next returns the next line, failing t if the stream ends or stays silent
// for 10 s.
func (w *watchStream) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			t.Fatalf("watch ended: %v", w.end())
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("no watch line within 10 s")
		return ""
	}
}

// wait waits up to 10 s for the stream to end and returns why it ended.
func (w *watchStream) wait(t *testing.T) error {
	t.Helper()
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return w.end()
			}
			t.Errorf("unexpected watch line %q", line)
		case <-time.After(10 * time.Second):
			t.Fatal("watch still open after 10 s")
		}
	}
}

// drain reads lines until the stream ends, up to 10 s, and returns the
// last line.
func (w *watchStream) drain(t *testing.T) string {
	t.Helper()
	var last string
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return last
			}
			last = line
		case <-time.After(10 * time.Second):
			t.Fatal("watch still open after 10 s")
		}
	}
}

func (w *watchStream) end() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// newProxy starts a proxy to s and closes it when t ends.
func newProxy(t *testing.T, s *Server) *Proxy {
	t.Helper()
	p, err := NewProxy(s.ClientAddr())
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

func TestProxyCutAllBreaksStreams(t *testing.T) {
	s := NewServer(t, Config{})
	p := newProxy(t, s)
	if got, want := p.Endpoint("http"), "http://"+p.Addr(); got != want {
		t.Errorf("Endpoint(http) = %q, want %q", got, want)
	}
	gw := newGateway(t, p.Endpoint("http"), nil)
	w := startWatch(t, gw.client, gw.base, "cut")
	if got := p.Conns(); got != 1 {
		t.Errorf("Conns() with a watch = %d, want 1", got)
	}

	newGateway(t, s.Endpoint(), nil).put("cut", "before")
	if line := w.next(t); !strings.Contains(line, `"events"`) {
		t.Errorf("watch line = %q, want an event", line)
	}

	p.CutAll()
	// A cut mid-stream is an unexpected EOF or a reset, never a clean end.
	if err := w.wait(t); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v, want a read error", err)
	}

	// New connections work.
	if value, _, _ := gw.get("cut"); value != "before" {
		t.Errorf("range through the proxy after CutAll = %q, want before", value)
	}
	if got := p.Accepted(); got != 2 {
		t.Errorf("Accepted() = %d, want 2", got)
	}
	if p.BytesFromServer() == 0 || p.BytesToServer() == 0 {
		t.Errorf("BytesFromServer() = %d, BytesToServer() = %d, want both > 0", p.BytesFromServer(), p.BytesToServer())
	}
}

func TestProxyPauseResume(t *testing.T) {
	s := NewServer(t, Config{})
	p := newProxy(t, s)
	gw := newGateway(t, p.Endpoint("http"), nil)
	w := startWatch(t, gw.client, gw.base, "pause")

	p.Pause()
	fromServer := p.BytesFromServer()
	newGateway(t, s.Endpoint(), nil).put("pause", "held")

	// A new request goes into the black hole too.
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, _, err := newGateway(t, p.Endpoint("http"), nil).try(http.MethodGet, "/version", nil)
		done <- result{status, err}
	}()

	// Nothing can prove that bytes will never come; a quiet tenth of a
	// second while the server has an event to send is evidence enough.
	select {
	case line := <-w.lines:
		t.Errorf("watch line while paused: %q", line)
	case r := <-done:
		t.Errorf("request finished while paused: %d %v", r.status, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := p.BytesFromServer(); got != fromServer {
		t.Errorf("BytesFromServer() went from %d to %d while paused", fromServer, got)
	}

	p.Resume()
	if line := w.next(t); !strings.Contains(line, `"events"`) {
		t.Errorf("watch line after Resume = %q, want the held event", line)
	}
	select {
	case r := <-done:
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("request after Resume: %d %v, want 200", r.status, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("request did not finish within 10 s of Resume")
	}
}

func TestProxyRefuse(t *testing.T) {
	s := NewServer(t, Config{})
	p := newProxy(t, s)
	kept := newGateway(t, p.Endpoint("http"), nil)
	kept.do(http.MethodGet, "/version", nil) // leaves an idle keep-alive connection

	if err := p.SetRefuse(true); err != nil {
		t.Fatalf("SetRefuse(true): %v", err)
	}
	if err := p.SetRefuse(true); err != nil {
		t.Fatalf("second SetRefuse(true): %v", err)
	}
	if c, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial while refusing: %v, want connection refused", err)
	}
	// Live connections are kept.
	if status, body := kept.do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version on the kept connection = %d %s, want 200", status, body)
	}

	if err := p.SetRefuse(false); err != nil {
		t.Fatalf("SetRefuse(false): %v", err)
	}
	if status, body := newGateway(t, p.Endpoint("http"), nil).do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version after SetRefuse(false) = %d %s, want 200", status, body)
	}
	if got := p.Accepted(); got != 2 {
		t.Errorf("Accepted() = %d, want 2", got)
	}
}

func TestProxyClose(t *testing.T) {
	s := NewServer(t, Config{})
	p, err := NewProxy(s.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway(t, p.Endpoint("http"), nil)
	startWatch(t, gw.client, gw.base, "close")
	p.Pause() // Close must not hang on held bytes

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := p.Conns(); got != 0 {
		t.Errorf("Conns() after Close = %d, want 0", got)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("dial after Close succeeded, want an error")
	}
	if err := p.SetRefuse(false); err == nil {
		t.Error("SetRefuse(false) after Close succeeded, want an error")
	}
}

func TestProxyCutAfter(t *testing.T) {
	// A target that sends 100,000 bytes to each connection, then closes it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c.Write(payload)
				c.Close()
			})
		}
	})
	p, err := NewProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	p.CutAfter(1000, 70000)
	for i, want := range []int{1000, 70000, len(payload), len(payload)} {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got bytes.Buffer
		_, err = got.ReadFrom(c)
		c.Close()
		if got.Len() != want || !bytes.Equal(got.Bytes(), payload[:got.Len()]) {
			t.Errorf("connection %d got %d bytes (err %v), want the first %d", i, got.Len(), err, want)
		}
	}
	if got := p.Tripped(); got != 2 {
		t.Errorf("Tripped() = %d, want 2", got)
	}
}

func TestProxyHang(t *testing.T) {
	s := NewServer(t, Config{})
	p := newProxy(t, s)
	kept := newGateway(t, p.Endpoint("http"), nil)
	kept.do(http.MethodGet, "/version", nil) // leaves an idle keep-alive connection

	p.SetHang(true)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial while hanging: %v, want the connection accepted", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /version HTTP/1.1\r\nHost: etcd\r\n\r\n")); err != nil {
		t.Fatalf("write while hanging: %v", err)
	}
	// Nothing can prove that bytes will never come; a quiet fifth of a
	// second for a request etcd answers at once is evidence enough.
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read while hanging = %d bytes, %v; want nothing until the deadline (no answer, no close, no reset)", n, err)
	}
	if got := p.Hung(); got != 1 {
		t.Errorf("Hung() = %d, want 1", got)
	}
	if got := p.Conns(); got != 2 {
		t.Errorf("Conns() = %d, want 2 (the kept one and the hung one)", got)
	}
	// Live connections are not affected.
	if status, body := kept.do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version on the kept connection = %d %s, want 200", status, body)
	}

	p.SetHang(false)
	if status, body := newGateway(t, p.Endpoint("http"), nil).do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version after SetHang(false) = %d %s, want 200", status, body)
	}
	// The hung connection stays hung, and CutAll ends it.
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read of the hung connection after SetHang(false) = %d bytes, %v; want still nothing", n, err)
	}
	p.CutAll()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("read of the hung connection after CutAll: %v, want it closed", err)
	}
}

func TestProxyCloseEndsHungConnections(t *testing.T) {
	s := NewServer(t, Config{})
	p, err := NewProxy(s.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	p.SetHang(true)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /version HTTP/1.1\r\nHost: etcd\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Hung() == 1 })
	if err := p.Close(); err != nil { // returns only once hold has ended
		t.Fatalf("Close: %v", err)
	}
	if got := p.Conns(); got != 0 {
		t.Errorf("Conns() after Close = %d, want 0", got)
	}
}

func TestProxyDelay(t *testing.T) {
	s := NewServer(t, Config{})
	p := newProxy(t, s)
	gw := newGateway(t, p.Endpoint("http"), nil)
	gw.put("delay", "v")

	const delay = 300 * time.Millisecond
	p.SetDelay(delay)
	start := time.Now()
	value, _, _ := gw.get("delay") // on the live keep-alive connection
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("range with SetDelay(%v) took %v, want at least the delay", delay, elapsed)
	}
	if value != "v" {
		t.Errorf("range with a delay = %q, want v", value)
	}
	// A stream's bytes are late too, and the client's bytes are not: etcd
	// has applied the write before the event reaches the watch.
	w := startWatch(t, gw.client, gw.base, "delay2")
	direct := newGateway(t, s.Endpoint(), nil)
	start = time.Now()
	rev := direct.put("delay2", "w")
	if line := w.next(t); !strings.Contains(line, `"events"`) {
		t.Errorf("watch line = %q, want the event", line)
	}
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("watch event with SetDelay(%v) came after %v, want at least the delay", delay, elapsed)
	}
	if _, _, got := gw.get("delay2"); got != rev {
		t.Errorf("revision through the proxy = %d, want %d", got, rev)
	}

	p.SetDelay(0)
	if value, _, _ := gw.get("delay"); value != "v" {
		t.Errorf("range after SetDelay(0) = %q, want v", value)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
