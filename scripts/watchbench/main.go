// Command watchbench measures many idle watches on one client, the watch
// benchmark of issue 16: N watches (10,000 by default) on distinct keys,
// created by etcdgw over http://, by etcdgw over https:// and by clientv3
// (gRPC, the anchor), each against a fresh etcd that runs in a process of
// its own, so that this process's heap is the client's alone. For each
// contender it prints one row of a markdown table:
//
//   - conns: the ESTABLISHED TCP connections this process holds to etcd once
//     every watch is confirmed (from /proc/self/fd and /proc/net/tcp{,6});
//   - heap/watch and stack/watch: runtime.MemStats HeapAlloc and StackInuse
//     after a GC with the watches confirmed and idle, less the same before
//     the first watch (the client already connected by a Get), over N;
//     goroutines/watch likewise from runtime.NumGoroutine;
//   - create: from the first Watch call until every watch has delivered its
//     created response (etcdgw's Created, clientv3's WithCreatedNotify): a
//     created response comes once etcd has registered the watch, so any
//     later write to its key reaches it;
//   - p50 and p99: the delivery latency of events written at -rate per
//     second for -duration, spread over the watches: a writer (a clientv3
//     client of its own, the same for every contender) puts the time it
//     sends the put, in Unix nanoseconds, as the value, and the receiver of
//     each watch records its clock at delivery less that time; delivered is
//     how many of the puts a watch delivered;
//   - etcd heap, goroutines and fds: go_memstats_heap_inuse_bytes,
//     go_goroutines and process_open_fds from etcd's /metrics with the
//     watches idle, before the writer starts, once etcd's goroutine count
//     has settled (WATCHBENCH_TRACE=1 prints each reading).
//
// Run it through scripts/bench.sh, which raises the file limit first (each
// watch over plain HTTP/1.1 is its own connection until watches share a
// WebSocket):
//
//	bash scripts/bench.sh watches            # N=10000
//	WATCHES=1000 bash scripts/bench.sh watches
//
// or directly: go run ./scripts/watchbench -n 1000. -heapprofile FILE writes
// each contender's heap profile with its watches idle to FILE.contender, for
// `go tool pprof -sample_index=inuse_space`. It is a program, not a
// test, so `go test ./...` never runs it. Linux only (it reads /proc).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// serveFlag runs this program as the etcd child of the benchmark.
const serveFlag = "-serve-etcd"

func main() {
	if len(os.Args) == 2 && os.Args[1] == serveFlag {
		serve()
		return
	}
	n := flag.Int("n", envInt("WATCHES", 10000), "watches per contender (default $WATCHES, else 10000)")
	rate := flag.Int("rate", 1000, "events per second in the latency phase")
	dur := flag.Duration("duration", 10*time.Second, "length of the latency phase")
	create := flag.Duration("create-timeout", 3*time.Minute, "bound on creating the watches of one contender")
	flag.StringVar(&heapProfile, "heapprofile", "", "write each contender's heap profile, with its watches idle, to this file name + \".\" + contender")
	only := flag.String("contenders", "etcdgw-http,etcdgw-https,clientv3", "comma-separated contenders to run, in order")
	flag.Parse()
	if heapProfile != "" {
		// Every allocation sampled: the profile accounts for each byte a
		// watch holds.
		runtime.MemProfileRate = 1
	}

	start := time.Now()
	fmt.Printf("watchbench: %d watches, %d events/s for %v; %s, etcd %s, %d cores, file limit %s\n\n",
		*n, *rate, *dur, runtime.Version(), version.Version, runtime.NumCPU(), fileLimit())
	fmt.Println("| contender | watches | conns to etcd | heap/watch | stack/watch | goroutines/watch | create | p50 | p99 | delivered | etcd heap inuse | etcd goroutines | etcd fds |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var notes []string
	failed := false
	for _, name := range strings.Split(*only, ",") {
		r := runContender(strings.TrimSpace(name), *n, *rate, *dur, *create)
		fmt.Println(r.row())
		if r.err != nil {
			notes = append(notes, r.name+": "+r.err.Error())
			failed = failed || r.created < r.n
		}
		// Let the closed client's memory and connections go before the
		// next contender measures its own.
		runtime.GC()
	}
	fmt.Println()
	for _, note := range notes {
		fmt.Println("note:", note)
	}
	fmt.Printf("wall time %.1fs\n", time.Since(start).Seconds())
	if failed {
		os.Exit(1)
	}
}

// heapProfile is the -heapprofile flag.
var heapProfile string

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// result is one contender's row; err, when set, says where it stopped or
// what went wrong (a writer that fell behind, events not delivered), and
// the fields measured before that are still printed.
type result struct {
	name        string
	n           int
	created     int
	conns       int
	heap, stack float64 // bytes per watch
	goroutines  float64 // per watch
	create      time.Duration
	p50, p99    time.Duration
	sent, recv  int64
	etcd        etcdMetrics
	err         error
}

func (r *result) row() string {
	cells := []string{r.name, strconv.Itoa(r.n), "", "", "", "", "", "", "", "", "", "", ""}
	if r.created == r.n {
		cells[2] = strconv.Itoa(r.conns)
		cells[3] = fmt.Sprintf("%.0f B", r.heap)
		cells[4] = fmt.Sprintf("%.0f B", r.stack)
		cells[5] = fmt.Sprintf("%.2f", r.goroutines)
		cells[6] = fmt.Sprintf("%.2fs", r.create.Seconds())
		cells[10] = fmt.Sprintf("%.0f MiB", float64(r.etcd.heapInuse)/(1<<20))
		cells[11] = strconv.FormatInt(r.etcd.goroutines, 10)
		cells[12] = strconv.FormatInt(r.etcd.fds, 10)
	} else if r.created > 0 {
		cells[6] = fmt.Sprintf("%d of %d created", r.created, r.n)
	}
	if r.sent > 0 {
		cells[7] = fmtDur(r.p50)
		cells[8] = fmtDur(r.p99)
		cells[9] = fmt.Sprintf("%d/%d", r.recv, r.sent)
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// watcher is what the benchmark needs of a client, whose watches are
// channels of type C.
type watcher[C any] interface {
	get(ctx context.Context) error
	// watch starts watching key.
	watch(ctx context.Context, key string) C
	// created waits for the watch's created response.
	created(ch C) error
	// deliver passes the value of every event on ch to f until ch closes.
	deliver(ch C, f func([]byte))
	close()
}

func runContender(name string, n, rate int, dur, createTimeout time.Duration) (r result) {
	r.name, r.n = name, n
	if name != "etcdgw-http" && name != "etcdgw-https" && name != "clientv3" {
		r.err = fmt.Errorf("unknown contender %q: etcdgw-http, etcdgw-https or clientv3", name)
		return r
	}
	srv, err := startEtcd()
	if err != nil {
		r.err = err
		return r
	}
	defer srv.stop()
	switch name {
	case "etcdgw-http":
		c, err := newGW(srv.HTTP)
		if err != nil {
			r.err = err
			return r
		}
		defer c.close()
		measure(&r, c, srv, srv.HTTP, rate, dur, createTimeout)
	case "etcdgw-https":
		c, err := newGW(srv.HTTPS, etcdgw.WithCAFile(srv.CA))
		if err != nil {
			r.err = err
			return r
		}
		defer c.close()
		measure(&r, c, srv, srv.HTTPS, rate, dur, createTimeout)
	case "clientv3":
		c, err := newV3(srv.HTTP)
		if err != nil {
			r.err = err
			return r
		}
		defer c.close()
		measure(&r, c, srv, srv.HTTP, rate, dur, createTimeout)
	}
	return r
}

// measure fills r for client c of etcd srv at endpoint.
func measure[C any](r *result, c watcher[C], srv *etcdProc, endpoint string, rate int, dur, createTimeout time.Duration) {
	n := r.n
	u, err := url.Parse(endpoint)
	if err != nil {
		r.err = err
		return
	}
	etcdPort, _ := strconv.Atoi(u.Port())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.get(ctx); err != nil {
		r.err = fmt.Errorf("first get: %w", err)
		return
	}
	// The keys are the caller's, and the harness allocates nothing per
	// watch from here on: the heap's growth is the client's.
	keys := make([]string, n)
	for i := range keys {
		keys[i] = watchKey(i)
	}
	chans := make([]C, n)
	mem0, g0 := memAfterGC()

	begin := time.Now()
	for i, key := range keys {
		chans[i] = c.watch(ctx, key)
	}
	deadline := time.AfterFunc(createTimeout, cancel)
	for _, ch := range chans {
		if err := c.created(ch); err != nil {
			if !deadline.Stop() {
				err = fmt.Errorf("%w (-create-timeout %v passed)", err, createTimeout)
			}
			r.err = fmt.Errorf("watch %d of %d not created after %v: %w", r.created+1, n, time.Since(begin).Round(time.Millisecond), err)
			return
		}
		r.created++
	}
	if !deadline.Stop() {
		r.err = fmt.Errorf("watches not all created within %v", createTimeout)
		return
	}
	r.create = time.Since(begin)

	mem1, g1 := memAfterGC()
	r.heap = float64(int64(mem1.HeapAlloc)-int64(mem0.HeapAlloc)) / float64(n)
	r.stack = float64(int64(mem1.StackInuse)-int64(mem0.StackInuse)) / float64(n)
	r.goroutines = float64(g1-g0) / float64(n)
	if heapProfile != "" {
		if err := writeHeapProfile(heapProfile + "." + r.name); err != nil {
			r.err = err
			return
		}
	}
	if r.conns, err = connsTo(etcdPort); err != nil {
		r.err = err
		return
	}
	if r.etcd, err = settled(srv.HTTP); err != nil {
		r.err = err
		return
	}

	start := func(f func([]byte)) {
		for _, ch := range chans {
			go c.deliver(ch, f)
		}
	}
	r.p50, r.p99, r.sent, r.recv, r.err = latency(ctx, srv.HTTP, n, rate, dur, start)
}

func watchKey(i int) string { return fmt.Sprintf("/bench/w/%05d", i) }

// memAfterGC returns the memory statistics and goroutine count once the
// heap holds only live objects.
func memAfterGC() (runtime.MemStats, int) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m, runtime.NumGoroutine()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// latency writes rate events per second for dur, each to the next watch of a
// stride through all n, and returns the percentiles of their delivery.
func latency(ctx context.Context, endpoint string, n, rate int, dur time.Duration, start func(deliver func([]byte))) (p50, p99 time.Duration, sent, recv int64, err error) {
	total := int(float64(rate) * dur.Seconds())
	lat := make([]int64, total)
	var got atomic.Int64
	allIn := make(chan struct{})
	deliver := func(v []byte) {
		now := time.Now().UnixNano()
		ts, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return
		}
		i := got.Add(1)
		if i <= int64(total) {
			lat[i-1] = now - ts
		}
		if i == int64(total) {
			close(allIn)
		}
	}
	start(deliver)

	w, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer w.Close()
	// A stride coprime with n visits every watch before any twice.
	stride := 7919
	for gcd(stride, n) != 1 {
		stride++
	}
	jobs := make(chan int, 1024)
	var putErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for j := range jobs {
				key := watchKey(j * stride % n)
				ts := strconv.FormatInt(time.Now().UnixNano(), 10)
				if _, err := w.Put(ctx, key, ts); err != nil {
					putErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	begin := time.Now()
	interval := time.Second / time.Duration(rate)
	for j := range total {
		// Pacing, not synchronisation: the writer keeps to its schedule.
		if d := time.Until(begin.Add(time.Duration(j) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	writeTime := time.Since(begin)
	sent = int64(total)
	if p := putErr.Load(); p != nil {
		err = fmt.Errorf("put: %w", *p)
	}
	select {
	case <-allIn:
	case <-time.After(10 * time.Second):
	}
	recv = min(got.Load(), sent)
	s := slices.Clone(lat[:recv])
	slices.Sort(s)
	if len(s) > 0 {
		p50 = time.Duration(s[len(s)/2])
		p99 = time.Duration(s[len(s)*99/100])
	}
	if err == nil && writeTime > dur+dur/10 {
		err = fmt.Errorf("the writer fell behind: %d puts took %v, not %v", total, writeTime.Round(time.Millisecond), dur)
	}
	if err == nil && recv < sent {
		err = fmt.Errorf("%d of %d events not delivered within 10s of the last put", sent-recv, sent)
	}
	return p50, p99, sent, recv, err
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// gw is etcdgw as a watcher.
type gw struct{ c *etcdgw.Client }

func newGW(endpoint string, opts ...etcdgw.Option) (*gw, error) {
	c, err := etcdgw.New(append([]etcdgw.Option{etcdgw.WithEndpoints(endpoint), etcdgw.WithTimeout(time.Minute)}, opts...)...)
	if err != nil {
		return nil, err
	}
	return &gw{c}, nil
}

func (g *gw) get(ctx context.Context) error {
	_, err := g.c.Get(ctx, "/bench/warm")
	return err
}

func (g *gw) close() { g.c.Close() }

func (g *gw) watch(ctx context.Context, key string) etcdgw.WatchChan { return g.c.Watch(ctx, key) }

func (g *gw) created(ch etcdgw.WatchChan) error {
	r, ok := <-ch
	return firstResponse(ok, r.Err(), r.Created)
}

func (g *gw) deliver(ch etcdgw.WatchChan, f func([]byte)) {
	for r := range ch {
		for _, ev := range r.Events {
			f(ev.Kv.Value)
		}
	}
}

// firstResponse says what is wrong with a watch's first response, if
// anything: it must be there, without an error, and say Created.
func firstResponse(ok bool, err error, created bool) error {
	switch {
	case !ok:
		return errors.New("watch channel closed")
	case err != nil:
		return err
	case !created:
		return errors.New("first response is not Created")
	}
	return nil
}

// v3 is clientv3 as a watcher.
type v3 struct{ c *clientv3.Client }

func newV3(endpoint string) (*v3, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	return &v3{c}, nil
}

func (v *v3) get(ctx context.Context) error {
	_, err := v.c.Get(ctx, "/bench/warm")
	return err
}

func (v *v3) close() { v.c.Close() }

func (v *v3) watch(ctx context.Context, key string) clientv3.WatchChan {
	return v.c.Watch(ctx, key, clientv3.WithCreatedNotify())
}

func (v *v3) created(ch clientv3.WatchChan) error {
	r, ok := <-ch
	return firstResponse(ok, r.Err(), r.Created)
}

func (v *v3) deliver(ch clientv3.WatchChan, f func([]byte)) {
	for r := range ch {
		for _, ev := range r.Events {
			f(ev.Kv.Value)
		}
	}
}

// connsTo counts the ESTABLISHED TCP connections of this process whose
// remote port is port: the sockets among /proc/self/fd, looked up by inode
// in /proc/self/net/tcp and tcp6 (which list every socket of the network
// namespace, etcd's own included).
func connsTo(port int) (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	count := 0
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" || !mine[fields[9]] {
				continue
			}
			_, remPort, ok := strings.Cut(fields[2], ":")
			if p, err := strconv.ParseInt(remPort, 16, 32); ok && err == nil && int(p) == port {
				count++
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
	}
	return count, nil
}

// settled scrapes etcd's /metrics every half second until its goroutine
// count holds within 1% across a second, for at most 30 seconds, and returns
// the last reading: right after the last created response etcd is still
// finishing the work of the creation.
func settled(endpoint string) (etcdMetrics, error) {
	deadline := time.Now().Add(30 * time.Second)
	var seen []int64
	for {
		m, err := scrape(endpoint)
		if err != nil {
			return m, err
		}
		seen = append(seen, m.goroutines)
		if os.Getenv("WATCHBENCH_TRACE") != "" {
			fmt.Fprintf(os.Stderr, "etcd: %d goroutines, heap inuse %d MiB, %d fds\n", m.goroutines, m.heapInuse>>20, m.fds)
		}
		if k := len(seen); k >= 3 && within(seen[k-3], m.goroutines) && within(seen[k-2], m.goroutines) || time.Now().After(deadline) {
			return m, nil
		}
		// Polling etcd, which says nothing when it is done.
		time.Sleep(500 * time.Millisecond)
	}
}

func within(a, b int64) bool { return 100*(max(a, b)-min(a, b)) <= max(a, b) }

// etcdMetrics are the numbers read from etcd's /metrics.
type etcdMetrics struct{ heapInuse, goroutines, fds int64 }

func scrape(endpoint string) (etcdMetrics, error) {
	var m etcdMetrics
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heapInuse = int64(f)
		case "go_goroutines":
			m.goroutines = int64(f)
		case "process_open_fds":
			m.fds = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.heapInuse == 0 || m.goroutines == 0 {
		return m, fmt.Errorf("%s/metrics has no go_memstats_heap_inuse_bytes or go_goroutines", endpoint)
	}
	return m, nil
}

// etcdProc is an etcd child: this program run with serveFlag.
type etcdProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	endpoints
}

// endpoints are what the child prints once etcd is ready.
type endpoints struct {
	HTTP  string `json:"http"`
	HTTPS string `json:"https"`
	CA    string `json:"ca"`
}

func startEtcd() (*etcdProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, serveFlag)
	// etcd's gateway logs each stream a client ends; keep only the end of
	// it, for a child that does not start.
	logTail := &tail{max: 4 << 10}
	cmd.Stderr = logTail
	setDeathSignal(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &etcdProc{cmd: cmd, stdin: in}
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &p.endpoints)
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("etcd child did not start: %v: %s", err, logTail.String())
	}
	return p, nil
}

func (p *etcdProc) stop() {
	p.stdin.Close()
	_ = p.cmd.Wait()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// serve runs etcd over https and plain http until stdin closes.
func serve() {
	s, err := etcdtest.StartServer(etcdtest.Config{Name: "watchbench", TLS: true, AlsoPlain: true, QuotaBackendBytes: 8 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd child:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(endpoints{HTTP: s.PlainEndpoint(), HTTPS: s.Endpoint(), CA: s.Certs().CAFile})
	fmt.Println(string(line))
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or exits
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd child:", err)
	}
}
