package etcdgw_test

// BenchmarkLeaseRenew measures what one lease renewal costs over https
// (HTTP/2), the whole system's CPU included: this process (the client) and
// the child etcd (its gateway, which turns each renewal into a gRPC
// LeaseKeepAlive on its own gRPC port, and the lease itself).
//
//	etcdgw        Client.KeepAliveOnce: one short POST /v3/lease/keepalive
//	              per renewal, as KeepAlive renews today
//	raw-short     net/http posting the same request and decoding the
//	              answer with encoding/json: the short path's floor
//	raw-stream    a prototype of a shared duplex stream: every renewal is
//	              one {"ID":"…"} line on a single POST to the member that
//	              stays open, its answer one line back, matched to the
//	              caller waiting for it by lease ID
//
// g is the number of renewals in flight (callers), over n leases. Metrics:
// cpu-ns/op is the client's CPU per renewal, srv-cpu-ns/op etcd's,
// total-cpu-ns/op both, renewals/s the throughput.
//
//	go test -run '^$' -bench LeaseRenew -benchmem -benchtime 20000x
//
// BenchmarkLeaseKeepAlive keeps 1,000 leases alive with KeepAlive, as a
// program holding many leases does, and measures the same per renewal:
// "stream" is the default over https, renewals on the shared duplex stream;
// "short" is WithWatchMultiplexing(false), a short request per renewal.
//
//	go test -run '^$' -bench LeaseKeepAlive -benchmem -benchtime 5000x

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdgw/etcdgw"
)

const benchLeases = 1000

func BenchmarkLeaseRenew(b *testing.B) {
	ep, ca := benchTLSEndpoint(b)
	gw, err := etcdgw.New(etcdgw.WithEndpoints(ep), etcdgw.WithCAFile(ca), etcdgw.WithTimeout(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	ctx := context.Background()
	// Long TTLs: a lease must not expire while a slow variant runs.
	ids := make([]etcdgw.LeaseID, benchLeases)
	for i := range ids {
		r, err := gw.Grant(ctx, 3600)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	defer func() {
		for _, id := range ids {
			_, _ = gw.Revoke(ctx, id)
		}
	}()
	for _, g := range []int{1, 64} {
		pre := "g=" + strconv.Itoa(g) + "/"
		b.Run(pre+"etcdgw", func(b *testing.B) {
			renewLoop(b, g, ids, func(ctx context.Context, id etcdgw.LeaseID) error {
				r, err := gw.KeepAliveOnce(ctx, id)
				if err != nil {
					return err
				}
				return checkRenewal(int64(id), int64(r.ID), r.TTL)
			})
		})
		b.Run(pre+"raw-short", func(b *testing.B) {
			hc := benchH2Client(b, ca)
			renewLoop(b, g, ids, func(ctx context.Context, id etcdgw.LeaseID) error {
				return rawRenew(ctx, hc, ep, id)
			})
		})
		b.Run(pre+"raw-stream", func(b *testing.B) {
			s, err := openRenewStream(benchH2Client(b, ca), ep)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			renewLoop(b, g, ids, s.renew)
		})
	}
}

func BenchmarkLeaseKeepAlive(b *testing.B) {
	for _, v := range []struct {
		name string
		tls  bool
		opts []etcdgw.Option
	}{
		{"stream", true, nil},
		{"short", true, []etcdgw.Option{etcdgw.WithWatchMultiplexing(false)}},
		// Over plain http the stream is a WebSocket.
		{"http/websocket", false, nil},
		{"http/short", false, []etcdgw.Option{etcdgw.WithWatchMultiplexing(false)}},
	} {
		b.Run(v.name, func(b *testing.B) {
			child := &bench.benchChild
			var ep string
			var conn []etcdgw.Option
			if v.tls {
				var ca string
				ep, ca = benchTLSEndpoint(b)
				child = &bench.tls
				conn = []etcdgw.Option{etcdgw.WithCAFile(ca)}
			} else {
				ep = benchEndpoint(b)
			}
			var renewals, failures atomic.Int64
			obs := etcdgw.Observer{KeepAlive: func(_ context.Context, k etcdgw.KeepAliveInfo) {
				if k.Err != nil {
					failures.Add(1)
				}
				renewals.Add(1)
			}}
			gw, err := etcdgw.New(append(append([]etcdgw.Option{etcdgw.WithEndpoints(ep),
				etcdgw.WithObserver(obs)}, conn...), v.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// TTL 3: a renewal a second per lease, 1,000 a second in all.
			for range benchLeases {
				g, err := gw.Grant(ctx, 3)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := gw.KeepAlive(ctx, g.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			from := renewals.Load()
			start := time.Now()
			cpu, srv := processCPU(), child.cpu()
			for renewals.Load()-from < int64(b.N) {
				time.Sleep(10 * time.Millisecond) // a benchmark's poll, not synchronisation
			}
			b.StopTimer()
			n := float64(renewals.Load() - from)
			c, s := float64(processCPU()-cpu), float64(child.cpu()-srv)
			b.ReportMetric(c/n, "cpu-ns/op")
			b.ReportMetric(s/n, "srv-cpu-ns/op")
			b.ReportMetric((c+s)/n, "total-cpu-ns/op")
			b.ReportMetric(n/time.Since(start).Seconds(), "renewals/s")
			if f := failures.Load(); f > 0 {
				b.Fatalf("%d renewals failed", f)
			}
			cancel()
			// Leases left to expire: revoking 1,000 would cost more than the run.
		})
	}
}

// renewLoop renews the leases round-robin b.N times in total, from g
// goroutines, and reports the CPU of client and server per renewal.
func renewLoop(b *testing.B, g int, ids []etcdgw.LeaseID, renew func(context.Context, etcdgw.LeaseID) error) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cpu, srv := processCPU(), bench.tls.cpu()
	for range g {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := renew(ctx, ids[int(i)%len(ids)]); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	c, s := float64(processCPU()-cpu), float64(bench.tls.cpu()-srv)
	n := float64(b.N)
	b.ReportMetric(c/n, "cpu-ns/op")
	b.ReportMetric(s/n, "srv-cpu-ns/op")
	b.ReportMetric((c+s)/n, "total-cpu-ns/op")
	b.ReportMetric(n/elapsed.Seconds(), "renewals/s")
	if p := firstErr.Load(); p != nil {
		b.Fatal(*p)
	}
}

func checkRenewal(want, got, ttl int64) error {
	if got != want || ttl <= 0 {
		return fmt.Errorf("renewal of %d: got ID %d TTL %d", want, got, ttl)
	}
	return nil
}

// benchH2Client is a net/http client of the https child, over HTTP/2.
func benchH2Client(b *testing.B, caFile string) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		b.Fatal("no CA in", caFile)
	}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t}
}

// renewLine is one keepalive answer, {"result":{...,"ID":"1","TTL":"60"}}.
type renewLine struct {
	Result struct {
		ID  int64 `json:"ID,string"`
		TTL int64 `json:"TTL,string"`
	} `json:"result"`
	Error json.RawMessage `json:"error"`
}

func appendRenewRequest(buf []byte, id etcdgw.LeaseID) []byte {
	buf = append(buf, `{"ID":"`...)
	buf = strconv.AppendInt(buf, int64(id), 10)
	return append(buf, "\"}\n"...)
}

// rawRenew renews id with one short request.
func rawRenew(ctx context.Context, hc *http.Client, ep string, id etcdgw.LeaseID) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep+"/v3/lease/keepalive", bytes.NewReader(appendRenewRequest(nil, id)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("answered over HTTP/%d", resp.ProtoMajor)
	}
	var l renewLine
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return err
	}
	if l.Error != nil {
		return fmt.Errorf("renewal of %d: %s", id, l.Error)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return checkRenewal(int64(id), l.Result.ID, l.Result.TTL)
}

// renewStream is the prototype of renewals on one duplex stream: callers
// queue their request line and wait for the answer with their lease's ID.
type renewStream struct {
	cancel context.CancelFunc
	pw     *io.PipeWriter
	done   chan struct{} // closed when the reader ends
	err    error         // why, set before done closes

	mu      sync.Mutex
	queue   []byte // request lines for the writer
	wake    chan struct{}
	waiting map[etcdgw.LeaseID][]chan int64 // answers' TTLs by lease ID
}

func openRenewStream(hc *http.Client, ep string) (*renewStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &renewStream{cancel: cancel, pw: pw, done: make(chan struct{}), wake: make(chan struct{}, 1),
		waiting: map[etcdgw.LeaseID][]chan int64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep+"/v3/lease/keepalive", pr)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	go s.write(ctx)
	// etcd's gateway sends the answer's headers with its first message:
	// Do returns once the first renewal is answered.
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			s.end(err)
			return
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			err := fmt.Errorf("stream answered %s over HTTP/%d", resp.Status, resp.ProtoMajor)
			resp.Body.Close()
			s.end(err)
			return
		}
		s.end(s.read(resp.Body))
		resp.Body.Close()
	}()
	return s, nil
}

func (s *renewStream) write(ctx context.Context) {
	var batch []byte
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.pw.CloseWithError(ctx.Err())
			return
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		if _, err := s.pw.Write(batch); err != nil {
			return
		}
	}
}

func (s *renewStream) read(body io.Reader) error {
	br := bufio.NewReaderSize(body, 32<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		var l renewLine
		if err := json.Unmarshal(line, &l); err != nil {
			return err
		}
		if l.Error != nil {
			return fmt.Errorf("stream: %s", l.Error)
		}
		id := etcdgw.LeaseID(l.Result.ID)
		s.mu.Lock()
		w := s.waiting[id]
		var ch chan int64
		if len(w) > 0 {
			ch = w[0]
			if len(w) == 1 {
				delete(s.waiting, id)
			} else {
				s.waiting[id] = w[1:]
			}
		}
		s.mu.Unlock()
		if ch != nil {
			ch <- l.Result.TTL
		}
	}
}

func (s *renewStream) end(err error) {
	s.err = err
	close(s.done)
}

var errStreamClosed = errors.New("renewal stream closed")

func (s *renewStream) renew(ctx context.Context, id etcdgw.LeaseID) error {
	ch := make(chan int64, 1)
	s.mu.Lock()
	s.waiting[id] = append(s.waiting[id], ch)
	s.queue = appendRenewRequest(s.queue, id)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case ttl := <-ch:
		return checkRenewal(int64(id), int64(id), ttl)
	case <-s.done:
		if s.err != nil {
			return s.err
		}
		return errStreamClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *renewStream) close() {
	s.cancel()
	<-s.done
}
