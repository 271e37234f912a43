package etcdgw_test

// End-to-end benchmarks, each beside its baselines so one run compares them:
//
//	etcdgw    this library
//	raw       net/http posting the same JSON and discarding the answer: the
//	          limit for any gateway client
//	naive     net/http with encoding/json into mirror structs
//	clientv3  the official client over gRPC, for reference
//
// The etcd they talk to runs in a child process (this test binary re-executed,
// see serveBenchChild), so that -benchmem and the alloc metrics count the
// client's allocations only, not the server's. It starts on the first
// benchmark; the normal test run never starts it.
//
//	go test -run '^$' -bench . -benchmem

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

const benchChildEnv = "ETCDGW_BENCH_SERVER"

// serveBenchChild runs the benchmarks' etcd when this process is the child
// that startBenchChild launched: it prints the endpoint (and, serving https,
// the CA file on a second line), serves until its stdin closes, and reports
// true. Otherwise it reports false at once.
func serveBenchChild() bool {
	mode := os.Getenv(benchChildEnv)
	if mode != "1" && mode != "tls" {
		return false
	}
	s, err := etcdtest.StartServer(etcdtest.Config{Name: "bench", QuotaBackendBytes: 8 << 30, TLS: mode == "tls"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
	fmt.Println(s.Endpoint())
	if mode == "tls" {
		fmt.Println(s.Certs().CAFile)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or exits
	s.Close()
	return true
}

// benchChild is an etcd in a child process.
type benchChild struct {
	once     sync.Once
	err      error
	cmd      *exec.Cmd
	stdin    io.Closer
	endpoint string
	caFile   string // serving https: the CA that signed its certificate
}

// start launches the child the first time; mode is "1" for http, "tls"
// for https.
func (bc *benchChild) start(b *testing.B, mode string) {
	bc.once.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			bc.err = err
			return
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), benchChildEnv+"="+mode)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			bc.err = err
			return
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			bc.err = err
			return
		}
		if err := cmd.Start(); err != nil {
			bc.err = err
			return
		}
		r := bufio.NewReader(out)
		line, err := r.ReadString('\n')
		ca := ""
		if err == nil && mode == "tls" {
			ca, err = r.ReadString('\n')
		}
		if err != nil {
			in.Close()
			_ = cmd.Wait()
			bc.err = fmt.Errorf("bench server did not start: %v", err)
			return
		}
		bc.cmd, bc.stdin = cmd, in
		bc.endpoint, bc.caFile = strings.TrimSpace(line), strings.TrimSpace(ca)
	})
	if bc.err != nil {
		b.Fatal(bc.err)
	}
}

// cpu is the CPU time the child has used, in nanoseconds (10 ms steps; 0
// where it cannot be read or before it started).
func (bc *benchChild) cpu() int64 {
	if bc.cmd == nil {
		return 0
	}
	return childCPU(bc.cmd.Process.Pid)
}

// stop ends the child, if it was started.
func (bc *benchChild) stop() {
	if bc.cmd != nil {
		bc.stdin.Close()
		_ = bc.cmd.Wait()
	}
}

var bench struct {
	benchChild // the plain-http etcd of most benchmarks
	tls        benchChild

	dirOnce, watchOnce sync.Once
	dirErr, watchErr   error
	watchRev           int64
}

// benchEndpoint returns the child etcd's endpoint, starting it the first time.
func benchEndpoint(b *testing.B) string {
	bench.start(b, "1")
	return bench.endpoint
}

// benchTLSEndpoint returns the https endpoint of a second child etcd and
// the file of its CA, starting it the first time.
func benchTLSEndpoint(b *testing.B) (endpoint, caFile string) {
	bench.tls.start(b, "tls")
	return bench.tls.endpoint, bench.tls.caFile
}

// serverCPU is the CPU time the plain child etcd has used, in nanoseconds
// (10 ms steps; 0 where it cannot be read).
func serverCPU() int64 { return bench.cpu() }

// stopBenchServer ends the child etcds that were started.
func stopBenchServer() {
	bench.stop()
	bench.tls.stop()
}

func benchGW(b *testing.B, opts ...etcdgw.Option) *etcdgw.Client {
	b.Helper()
	opts = append([]etcdgw.Option{etcdgw.WithEndpoints(benchEndpoint(b)), etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithSerializer(etcdgw.Raw), etcdgw.WithTimeout(time.Minute)}, opts...)
	c, err := etcdgw.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchV3(b *testing.B) *clientv3.Client {
	b.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{benchEndpoint(b)},
		DialTimeout:        10 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// rawHTTP is the net/http client of the baselines, tuned as etcdgw's
// transport is (the limit should not be handicapped).
type rawHTTP struct {
	c    *http.Client
	base string
}

func newRawHTTP(b *testing.B) *rawHTTP {
	t := &http.Transport{
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
		ReadBufferSize:      32 << 10,
		WriteBufferSize:     16 << 10,
	}
	b.Cleanup(t.CloseIdleConnections)
	return &rawHTTP{c: &http.Client{Transport: t}, base: benchEndpoint(b) + "/v3"}
}

// post sends body to path and returns the answer's body, which the caller
// must close.
func (r *rawHTTP) post(ctx context.Context, path string, body []byte) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return resp.Body, nil
}

// discard posts body and reads and drops the answer: the raw baseline.
func (r *rawHTTP) discard(ctx context.Context, path string, body []byte) error {
	rc, err := r.post(ctx, path, body)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	return err
}

// decode posts body and decodes the answer with encoding/json: the naive client.
func (r *rawHTTP) decode(ctx context.Context, path string, body []byte, v any) error {
	rc, err := r.post(ctx, path, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	return json.NewDecoder(rc).Decode(v)
}

// Mirror structs of the naive client.
type (
	naiveHeader struct {
		Revision int64 `json:"revision,string"`
	}
	naiveKV struct {
		Key            []byte `json:"key"`
		CreateRevision int64  `json:"create_revision,string"`
		ModRevision    int64  `json:"mod_revision,string"`
		Version        int64  `json:"version,string"`
		Value          []byte `json:"value"`
		Lease          int64  `json:"lease,string"`
	}
	naiveRange struct {
		Header naiveHeader `json:"header"`
		Kvs    []*naiveKV  `json:"kvs"`
		More   bool        `json:"more"`
		Count  int64       `json:"count,string"`
	}
	naivePut struct {
		Header naiveHeader `json:"header"`
	}
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// benchValue is a deterministic value of n bytes.
func benchValue(n, i int) string {
	v := fmt.Sprintf(`{"n":%d,"pad":"`, i)
	return v + strings.Repeat("x", max(n-len(v)-2, 0)) + `"}`
}

// inGoroutines runs op b.N times in total, from g goroutines.
func inGoroutines(b *testing.B, g int, op func(ctx context.Context) error) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	b.ReportAllocs()
	b.ResetTimer()
	cpu, srv := processCPU(), serverCPU()
	for range g {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(ctx); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	// The client's own CPU per call: far steadier than the wall time on a
	// busy machine, where etcd's share of the cores dominates the latency.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(serverCPU()-srv)/float64(b.N), "srv-cpu-ns/op")
	if p := firstErr.Load(); p != nil {
		b.Fatal(*p)
	}
}

const (
	benchGetKey = "/bench/kv/get"
	benchSetKey = "/bench/kv/set"
	benchKVSize = 100
)

// benchGoroutines are the callers of the unary benchmarks; Get also runs
// at 256 (getGoroutines), where read coalescing is meant to pass clientv3.
var (
	benchGoroutines = []int{1, 16, 64}
	getGoroutines   = []int{1, 16, 64, 256}
)

func BenchmarkGet(b *testing.B) {
	val := benchValue(benchKVSize, 0)
	gw := benchGW(b)
	if _, err := gw.Set(context.Background(), benchGetKey, val); err != nil {
		b.Fatal(err)
	}
	rangeBody := []byte(`{"key":"` + b64(benchGetKey) + `"}`)
	check := func(n int) error {
		if n != 1 {
			return fmt.Errorf("got %d kvs, want 1", n)
		}
		return nil
	}
	for _, g := range getGoroutines {
		pre := "g=" + strconv.Itoa(g) + "/"
		b.Run(pre+"etcdgw", func(b *testing.B) {
			inGoroutines(b, g, func(ctx context.Context) error {
				r, err := gw.Get(ctx, benchGetKey)
				if err != nil {
					return err
				}
				return check(len(r.Kvs))
			})
		})
		b.Run(pre+"etcdgw-uncoalesced", func(b *testing.B) {
			co := benchGW(b, etcdgw.WithReadCoalescing(false))
			inGoroutines(b, g, func(ctx context.Context) error {
				r, err := co.Get(ctx, benchGetKey)
				if err != nil {
					return err
				}
				return check(len(r.Kvs))
			})
		})
		b.Run(pre+"raw", func(b *testing.B) {
			raw := newRawHTTP(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				return raw.discard(ctx, "/kv/range", rangeBody)
			})
		})
		b.Run(pre+"naive", func(b *testing.B) {
			raw := newRawHTTP(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				var r naiveRange
				if err := raw.decode(ctx, "/kv/range", rangeBody, &r); err != nil {
					return err
				}
				return check(len(r.Kvs))
			})
		})
		b.Run(pre+"clientv3", func(b *testing.B) {
			v3 := benchV3(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				r, err := v3.Get(ctx, benchGetKey)
				if err != nil {
					return err
				}
				return check(len(r.Kvs))
			})
		})
	}
}

func BenchmarkSet(b *testing.B) {
	val := benchValue(benchKVSize, 0)
	gw := benchGW(b)
	putBody := []byte(`{"key":"` + b64(benchSetKey) + `","value":"` + b64(val) + `"}`)
	for _, g := range benchGoroutines {
		pre := "g=" + strconv.Itoa(g) + "/"
		b.Run(pre+"etcdgw", func(b *testing.B) {
			inGoroutines(b, g, func(ctx context.Context) error {
				_, err := gw.Set(ctx, benchSetKey, val)
				return err
			})
		})
		b.Run(pre+"raw", func(b *testing.B) {
			raw := newRawHTTP(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				return raw.discard(ctx, "/kv/put", putBody)
			})
		})
		b.Run(pre+"naive", func(b *testing.B) {
			raw := newRawHTTP(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				var r naivePut
				if err := raw.decode(ctx, "/kv/put", putBody, &r); err != nil {
					return err
				}
				if r.Header.Revision == 0 {
					return errors.New("no revision in the answer")
				}
				return nil
			})
		})
		b.Run(pre+"clientv3", func(b *testing.B) {
			v3 := benchV3(b)
			inGoroutines(b, g, func(ctx context.Context) error {
				_, err := v3.Put(ctx, benchSetKey, val)
				return err
			})
		})
	}
}

// fill writes n keys prefix+key-%08d with values of size bytes, 128 to a txn.
func fill(b *testing.B, prefix string, n, size int) (firstRev int64, err error) {
	v3 := benchV3(b)
	ctx := context.Background()
	for i := 0; i < n; i += 128 {
		var ops []clientv3.Op
		for j := i; j < min(i+128, n); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%skey-%08d", prefix, j), benchValue(size, j)))
		}
		r, err := v3.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return 0, err
		}
		if i == 0 {
			firstRev = r.Header.Revision
		}
	}
	return firstRev, nil
}

const (
	benchDir      = "/bench/dir/"
	benchDirKeys  = 20000
	benchDirValue = 256
)

func BenchmarkReadDir(b *testing.B) {
	bench.dirOnce.Do(func() { _, bench.dirErr = fill(b, benchDir, benchDirKeys, benchDirValue) })
	if bench.dirErr != nil {
		b.Fatal(bench.dirErr)
	}
	name := "keys=" + strconv.Itoa(benchDirKeys) + "/"
	// payload is the decoded key and value bytes of one read of the directory.
	payload := 0
	for i := range benchDirKeys {
		payload += len(fmt.Sprintf("%skey-%08d", benchDir, i)) + len(benchValue(benchDirValue, i))
	}
	// run reports, beside -benchmem's columns, the bytes allocated per decoded
	// key and value byte.
	run := func(b *testing.B, read func(ctx context.Context) (int, error)) {
		ctx := context.Background()
		// One read before measuring: each client measured in its steady state.
		if _, err := read(ctx); err != nil {
			b.Fatal(err)
		}
		var ms runtime.MemStats
		b.ReportAllocs()
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		b.ResetTimer()
		cpu, srv := processCPU(), serverCPU()
		for range b.N {
			n, err := read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n != benchDirKeys {
				b.Fatalf("read %d keys, want %d", n, benchDirKeys)
			}
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.TotalAlloc-before)/float64(b.N)/float64(payload), "allocB/kvB")
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(serverCPU()-srv)/float64(b.N), "srv-cpu-ns/op")
	}
	b.Run(name+"etcdgw", func(b *testing.B) {
		gw := benchGW(b)
		run(b, func(ctx context.Context) (int, error) {
			r, err := gw.ReadDir(ctx, benchDir)
			if err != nil {
				return 0, err
			}
			return len(r.Kvs), nil
		})
	})
	b.Run(name+"raw", func(b *testing.B) {
		// The same directory in pages of 2,000 keys by key range, each
		// answer read into a reused buffer and its keys counted: the limit.
		raw := newRawHTTP(b)
		key := func(i int) string {
			if i >= benchDirKeys {
				return b64(benchDir[:len(benchDir)-1] + "0")
			}
			return b64(fmt.Sprintf("%skey-%08d", benchDir, i))
		}
		var buf bytes.Buffer
		keyField := []byte(`"key":`)
		run(b, func(ctx context.Context) (int, error) {
			n := 0
			for i := 0; i < benchDirKeys; i += 2000 {
				rc, err := raw.post(ctx, "/kv/range", []byte(`{"key":"`+key(i)+`","range_end":"`+key(i+2000)+`"}`))
				if err != nil {
					return 0, err
				}
				buf.Reset()
				_, err = buf.ReadFrom(rc)
				rc.Close()
				if err != nil {
					return 0, err
				}
				n += bytes.Count(buf.Bytes(), keyField)
			}
			return n, nil
		})
	})
	b.Run(name+"naive", func(b *testing.B) {
		// Pages of 2,000 keys at the first page's revision: the gateway
		// cannot send the whole directory in one answer.
		raw := newRawHTTP(b)
		end := b64(benchDir[:len(benchDir)-1] + string(rune(benchDir[len(benchDir)-1]+1)))
		run(b, func(ctx context.Context) (int, error) {
			var all []*naiveKV
			key, rev := b64(benchDir), int64(0)
			for {
				body := fmt.Sprintf(`{"key":%q,"range_end":%q,"limit":"2000","revision":"%d"}`, key, end, rev)
				var r naiveRange
				if err := raw.decode(ctx, "/kv/range", []byte(body), &r); err != nil {
					return 0, err
				}
				if all == nil {
					all = make([]*naiveKV, 0, r.Count)
					rev = r.Header.Revision
				}
				all = append(all, r.Kvs...)
				if !r.More || len(r.Kvs) == 0 {
					return len(all), nil
				}
				key = base64.StdEncoding.EncodeToString(append(r.Kvs[len(r.Kvs)-1].Key, 0))
			}
		})
	})
	b.Run(name+"clientv3", func(b *testing.B) {
		v3 := benchV3(b)
		run(b, func(ctx context.Context) (int, error) {
			r, err := v3.Get(ctx, benchDir, clientv3.WithPrefix())
			if err != nil {
				return 0, err
			}
			return len(r.Kvs), nil
		})
	})
}

const (
	benchWatchDir    = "/bench/watch/"
	benchWatchEvents = 20000
	benchWatchValue  = 100
)

func BenchmarkWatchReplay(b *testing.B) {
	bench.watchOnce.Do(func() {
		bench.watchRev, bench.watchErr = fill(b, benchWatchDir, benchWatchEvents, benchWatchValue)
	})
	if bench.watchErr != nil {
		b.Fatal(bench.watchErr)
	}
	rev := bench.watchRev
	name := "events=" + strconv.Itoa(benchWatchEvents) + "/"
	run := func(b *testing.B, replay func(ctx context.Context) (int, error)) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu, srv := processCPU(), serverCPU()
		for range b.N {
			ctx, cancel := context.WithCancel(context.Background())
			n, err := replay(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			if n != benchWatchEvents {
				b.Fatalf("got %d events, want %d", n, benchWatchEvents)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchWatchEvents, "ns/event")
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/benchWatchEvents, "cpu-ns/event")
		b.ReportMetric(float64(serverCPU()-srv)/float64(b.N)/benchWatchEvents, "srv-cpu-ns/event")
	}
	b.Run(name+"etcdgw", func(b *testing.B) {
		gw := benchGW(b)
		run(b, func(ctx context.Context) (int, error) {
			n := 0
			wc := gw.WatchDir(ctx, benchWatchDir, etcdgw.WithRev(rev))
			for r := range wc {
				if err := r.Err(); err != nil {
					return n, err
				}
				n += len(r.Events)
				if n >= benchWatchEvents {
					break
				}
			}
			return n, nil
		})
	})
	b.Run(name+"raw", func(b *testing.B) {
		// Lines read with bufio.Scanner; events counted by their "kv" member.
		raw := newRawHTTP(b)
		body := []byte(fmt.Sprintf(`{"create_request":{"key":%q,"range_end":%q,"start_revision":"%d"}}`,
			b64(benchWatchDir), b64(benchWatchDir[:len(benchWatchDir)-1]+"0"), rev))
		kv := []byte(`"kv":`)
		buf := make([]byte, 64<<10)
		run(b, func(ctx context.Context) (int, error) {
			rc, err := raw.post(ctx, "/watch", body)
			if err != nil {
				return 0, err
			}
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(buf, 64<<20)
			n := 0
			for n < benchWatchEvents && sc.Scan() {
				n += bytes.Count(sc.Bytes(), kv)
			}
			return n, sc.Err()
		})
	})
	b.Run(name+"clientv3", func(b *testing.B) {
		v3 := benchV3(b)
		run(b, func(ctx context.Context) (int, error) {
			n := 0
			wc := v3.Watch(ctx, benchWatchDir, clientv3.WithPrefix(), clientv3.WithRev(rev))
			for r := range wc {
				if err := r.Err(); err != nil {
					return n, err
				}
				n += len(r.Events)
				if n >= benchWatchEvents {
					break
				}
			}
			return n, nil
		})
	})
}
