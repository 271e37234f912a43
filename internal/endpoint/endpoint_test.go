package endpoint

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestRing(n int, cfg Config) (*Ring, []*Endpoint, *clock) {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = &Endpoint{URL: "http://e" + string(rune('0'+i))}
	}
	r := NewRing(eps, cfg)
	clk := &clock{t: time.Unix(1000, 0)}
	r.now = clk.now
	return r, eps, clk
}

func TestRoundRobinFromRandomStart(t *testing.T) {
	starts := map[string]int{}
	for i := 0; i < 200; i++ {
		r, _, _ := newTestRing(3, Config{FailTimeout: time.Second})
		first := r.Pick(nil)
		starts[first.URL]++
		// Then every endpoint in turn.
		seen := map[*Endpoint]bool{first: true}
		seen[r.Pick(nil)] = true
		seen[r.Pick(nil)] = true
		assert.Len(t, seen, 3)
		r.Close()
	}
	assert.Len(t, starts, 3, "the ring starts at a random endpoint")
}

func TestFailSkipsUntilTimeoutThenProbe(t *testing.T) {
	var probes atomic.Int32
	probeOK := make(chan bool, 10)
	r, eps, clk := newTestRing(2, Config{FailTimeout: 10 * time.Second, MaxFails: 2, Probe: func(ctx context.Context, e *Endpoint) bool {
		probes.Add(1)
		return <-probeOK
	}})
	defer r.Close()
	r.Fail(eps[0])
	assert.True(t, r.Healthy(eps[0]), "one failure is below maxFails")
	r.Fail(eps[0])
	assert.False(t, r.Healthy(eps[0]))
	for i := 0; i < 5; i++ {
		assert.Same(t, eps[1], r.Pick(nil), "the unhealthy endpoint is skipped")
	}
	assert.Nil(t, r.Pick([]*Endpoint{eps[1]}), "nothing healthy besides the skipped one")

	clk.add(11 * time.Second)
	// The picks after the timeout start a probe, and skip it until it answers.
	assert.Same(t, eps[1], r.Pick(nil))
	assert.Same(t, eps[1], r.Pick(nil))
	probeOK <- true
	require.Eventually(t, func() bool { return r.Healthy(eps[0]) }, 5*time.Second, time.Millisecond)
	assert.Equal(t, int32(1), probes.Load())
	got := map[*Endpoint]bool{r.Pick(nil): true, r.Pick(nil): true}
	assert.Len(t, got, 2, "back in the rotation")
}

func TestFailedProbeKeepsItOut(t *testing.T) {
	r, eps, clk := newTestRing(2, Config{FailTimeout: 10 * time.Second, Probe: func(ctx context.Context, e *Endpoint) bool { return false }})
	defer r.Close()
	r.Fail(eps[0])
	clk.add(11 * time.Second)
	r.Pick(nil)
	r.Close() // waits for the probe
	assert.False(t, r.Healthy(eps[0]))
}

func TestRecoverWhenAllDown(t *testing.T) {
	var probes atomic.Int32
	ok := atomic.Bool{}
	r, eps, clk := newTestRing(1, Config{FailTimeout: 10 * time.Second, AllDownProbe: time.Second, Probe: func(ctx context.Context, e *Endpoint) bool {
		probes.Add(1)
		return ok.Load()
	}})
	defer r.Close()
	r.Fail(eps[0])
	assert.Nil(t, r.Pick(nil))
	assert.Nil(t, r.Recover(context.Background(), nil), "no probe within a second of the failure")
	assert.Zero(t, probes.Load())
	clk.add(1100 * time.Millisecond)
	assert.Nil(t, r.Recover(context.Background(), nil))
	assert.Equal(t, int32(1), probes.Load(), "probed once the interval passed")
	assert.Nil(t, r.Recover(context.Background(), nil))
	assert.Equal(t, int32(1), probes.Load(), "not again within the interval")
	clk.add(1100 * time.Millisecond)
	ok.Store(true)
	assert.Same(t, eps[0], r.Recover(context.Background(), nil))
	assert.True(t, r.Healthy(eps[0]))
}

func TestSucceedResets(t *testing.T) {
	r, eps, _ := newTestRing(1, Config{FailTimeout: time.Minute, MaxFails: 2})
	defer r.Close()
	r.Fail(eps[0])
	r.Succeed(eps[0])
	r.Fail(eps[0])
	assert.True(t, r.Healthy(eps[0]), "failures must be consecutive")
}

func TestHealthOff(t *testing.T) {
	r, eps, _ := newTestRing(1, Config{})
	defer r.Close()
	r.Fail(eps[0])
	assert.Same(t, eps[0], r.Pick(nil))
}

func TestConnsCloseAll(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); buf := make([]byte, 1); c.Read(buf) }()
		}
	}()
	conns := NewConns(Dialer("", time.Second))
	c1, err := conns.Dial(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	_, err = conns.Dial(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	assert.Equal(t, 2, conns.Len())
	require.NoError(t, c1.Close())
	assert.Equal(t, 1, conns.Len())
	conns.CloseAll()
	assert.Equal(t, 0, conns.Len())
	_, err = conns.Dial(context.Background(), "tcp", ln.Addr().String())
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestRecoverWaitsForProbeInFlight(t *testing.T) {
	var probes atomic.Int32
	started := make(chan struct{}, 10)
	probeOK := make(chan bool, 10)
	r, eps, clk := newTestRing(1, Config{FailTimeout: 10 * time.Second, Probe: func(ctx context.Context, e *Endpoint) bool {
		probes.Add(1)
		started <- struct{}{}
		return <-probeOK
	}})
	defer r.Close()
	r.Fail(eps[0])
	clk.add(11 * time.Second)
	// Pick starts a background probe and reports nothing usable.
	require.Nil(t, r.Pick(nil))
	<-started
	got := make(chan *Endpoint)
	go func() { got <- r.Recover(context.Background(), nil) }()
	select {
	case e := <-got:
		t.Fatalf("Recover returned %v before the probe in flight answered", e)
	case <-time.After(50 * time.Millisecond): // a chance to return early, which it must not take
	}
	probeOK <- true
	assert.Same(t, eps[0], <-got, "the probe in flight brought it back")
	assert.Equal(t, int32(1), probes.Load(), "no second probe")

	// A caller whose ctx ends stops waiting.
	r.Fail(eps[0])
	clk.add(11 * time.Second)
	require.Nil(t, r.Pick(nil))
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Nil(t, r.Recover(ctx, nil))
	probeOK <- false
}

// A pick after Close starts no probe: no goroutine outlives the ring.
func TestNoProbeAfterClose(t *testing.T) {
	var probes atomic.Int32
	r, eps, clk := newTestRing(2, Config{FailTimeout: 10 * time.Second, Probe: func(ctx context.Context, e *Endpoint) bool {
		probes.Add(1)
		return true
	}})
	r.Fail(eps[0])
	r.Close()
	clk.add(11 * time.Second)
	for range 4 {
		r.Pick(nil)
	}
	r.Close()
	assert.Zero(t, probes.Load(), "a probe started after Close")
	assert.False(t, r.Healthy(eps[0]))
}

func TestLastError(t *testing.T) {
	e := &Endpoint{}
	assert.NoError(t, e.LastError())
	e.SetLastError(context.DeadlineExceeded)
	assert.ErrorIs(t, e.LastError(), context.DeadlineExceeded)
}

// Concurrent shared probes of one endpoint run one probe and share its answer.
func TestSharedProbe(t *testing.T) {
	e := &Endpoint{}
	release := make(chan struct{})
	var runs atomic.Int32
	probe := func() bool { runs.Add(1); <-release; return true }
	results := make(chan bool, 5)
	go func() { results <- e.SharedProbe(context.Background(), probe) }()
	require.Eventually(t, func() bool {
		e.shared.mu.Lock()
		defer e.shared.mu.Unlock()
		return e.shared.cur != nil
	}, 5*time.Second, time.Millisecond)
	// The probe in flight cannot end before release: the four callers that
	// come now find it and wait for it.
	entered := make(chan struct{}, 4)
	for range 4 {
		go func() { entered <- struct{}{}; results <- e.SharedProbe(context.Background(), probe) }()
	}
	for range 4 {
		<-entered
	}
	time.Sleep(10 * time.Millisecond) // from the send above to SharedProbe's lock
	close(release)
	for range 5 {
		assert.True(t, <-results)
	}
	assert.Equal(t, int32(1), runs.Load(), "one probe for five concurrent callers")

	// A caller whose ctx ends stops waiting.
	block := make(chan struct{})
	go e.SharedProbe(context.Background(), func() bool { <-block; return true })
	require.Eventually(t, func() bool {
		e.shared.mu.Lock()
		defer e.shared.mu.Unlock()
		return e.shared.cur != nil
	}, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, e.SharedProbe(ctx, func() bool { t.Error("a second probe ran"); return true }))
	close(block)
}
