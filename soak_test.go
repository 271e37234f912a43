package etcdgw_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// The chaos soak: a 3-member cluster, each member behind fault-injecting
// proxies (one for https/HTTP/2, one for plain http: HTTP/1.1, and watches
// on a WebSocket), clients that run a
// random mix of operations on a small key space while faults are injected at
// random, and checks at the end: the KV history is linearizable (porcupine),
// every watcher delivered exactly the revision history of the store, leases
// kept alive were never lost, and no client saw revisions go backwards.
//
//	go test -run '^TestSoak$' -v . -soak=10m -soak.seed=42   (scripts/soak.sh 10m)
var (
	soakFor  = flag.Duration("soak", 0, "length of TestSoak's load (default 10s; ETCDGW_SOAK too)")
	soakSeed = flag.Uint64("soak.seed", 0, "seed of TestSoak's random choices (0: from the clock; ETCDGW_SOAK_SEED too)")
)

const (
	soakKeys     = 8 // keys of the linearizability model: /soak/k/0 ... /soak/k/7
	soakClients  = 12
	soakWatchers = 4
	soakHolders  = 2 // leases kept alive for the whole run
	soakHolderTT = 6 // their TTL in seconds: renewals must survive a leader election
	soakLockers  = 3 // sessions taking turns on one lock, writing through a fencing store
	soakLockTTL  = 3 // their sessions' TTL: some expire under the faults
)

func soakDuration() time.Duration {
	if *soakFor > 0 {
		return *soakFor
	}
	if v := os.Getenv("ETCDGW_SOAK"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 10 * time.Second
}

func soakSeedValue() uint64 {
	if *soakSeed != 0 {
		return *soakSeed
	}
	if v, err := strconv.ParseUint(os.Getenv("ETCDGW_SOAK_SEED"), 10, 64); err == nil && v != 0 {
		return v
	}
	return uint64(time.Now().UnixNano())
}

// kvInput and kvOutput are one operation of the linearizability model.
type kvInput struct {
	op  byte // 'g' get, 'p' put, 'd' delete, 'c' CAS on ModRevision, 'n' SetNX
	key string
	val string
	rev int64 // CAS: the expected ModRevision (0: absent)
}

type kvOutput struct {
	unknown bool // ErrOutcomeUnknown: may take effect at any time after the call
	ok      bool // CAS and SetNX succeeded; delete deleted the key
	exists  bool // get found the key
	val     string
	rev     int64 // get: the key's ModRevision; put, CAS, SetNX: the revision written
}

// kvState is one key in the model: its value and ModRevision (0 when a write
// of unknown outcome set it).
type kvState struct {
	exists bool
	val    string
	rev    int64
}

// kvModel is a key-value store with get, put, delete, CAS and SetNX,
// partitioned by key.
var kvModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{kvState{}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.op {
		case 'g':
			if out.exists != s.exists || (s.exists && (out.val != s.val || (s.rev != 0 && out.rev != s.rev))) {
				return nil
			}
			if s.exists {
				s.rev = out.rev
			}
			return []any{s}
		case 'p':
			return []any{kvState{exists: true, val: in.val, rev: out.rev}}
		case 'd':
			if !out.unknown && out.ok != s.exists {
				return nil
			}
			return []any{kvState{}}
		case 'n', 'c':
			var next []any
			put := kvState{exists: true, val: in.val, rev: out.rev}
			for _, holds := range condition(s, in) {
				switch {
				case out.unknown && holds:
					next = append(next, put)
				case out.unknown:
					next = append(next, s)
				case out.ok && holds:
					next = append(next, put)
				case !out.ok && !holds:
					next = append(next, s)
				}
			}
			return next
		}
		return nil
	},
	Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		res := fmt.Sprintf("ok=%v exists=%v val=%q rev=%d", out.ok, out.exists, out.val, out.rev)
		if out.unknown {
			res = "unknown"
		}
		return fmt.Sprintf("%c(%s, %q, %d) -> %s", in.op, in.key, in.val, in.rev, res)
	},
	DescribeState: func(state any) string {
		s := state.(kvState)
		if !s.exists {
			return "absent"
		}
		return fmt.Sprintf("%q@%d", s.val, s.rev)
	},
}

// condition returns the values a CAS or SetNX condition may have in state s:
// one, or both when the key's ModRevision is unknown.
func condition(s kvState, in kvInput) []bool {
	if in.op == 'n' {
		return []bool{!s.exists}
	}
	if !s.exists {
		return []bool{in.rev == 0}
	}
	if s.rev == 0 {
		return []bool{true, false}
	}
	return []bool{s.rev == in.rev}
}

func kvPartition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(kvInput).key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// soak is the state of one run.
type soak struct {
	t       *testing.T
	start   time.Time
	cluster *etcdtest.Cluster
	https   []*etcdtest.Proxy     // member i's https proxy
	plain   []*etcdtest.Proxy     // member i's plain-HTTP proxy, in front of l7[i]
	l7      []*etcdtest.HTTPProxy // member i's L7 proxy, in front of its plain URL
	caFile  string
	admin   *etcdgw.Client // every member's plain URL, no proxy: MoveLeader

	mu        sync.Mutex
	history   []porcupine.Operation
	opCounts  map[string]int // "Get ok", "Set unknown", ...
	faults    map[string]int
	anomalies []string
	unknown   int
	watchEvts int
	watchedBy []string // the watchers' names

	fenced, fencedRefused, holds int // the fencing store's counts
	lostToDeletion               int // holders whose key went while their lease lived
}

func (s *soak) now() int64 { return time.Since(s.start).Nanoseconds() }

func (s *soak) anomaly(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anomalies = append(s.anomalies, fmt.Sprintf(format, args...))
}

func (s *soak) count(op string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, etcdgw.ErrOutcomeUnknown):
		outcome = "unknown"
	case errors.Is(err, etcdgw.ErrNoHealthyEndpoint):
		outcome = "no healthy endpoint"
	case errors.Is(err, etcdgw.ErrUnavailable):
		outcome = "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "deadline"
	case errors.Is(err, etcdgw.ErrCompacted):
		outcome = "compacted"
	case errors.Is(err, etcdgw.ErrLeaseNotFound):
		outcome = "lease not found"
	default:
		outcome = "other error"
	}
	s.mu.Lock()
	s.opCounts[op+" "+outcome]++
	if outcome == "unknown" {
		s.unknown++
	}
	s.mu.Unlock()
	if outcome == "other error" {
		s.anomaly("%s: unexpected error: %v", op, err)
	}
}

func (s *soak) record(client int, in kvInput, out kvOutput, call, ret int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(s.history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
}

// client returns a client of every member through its proxies: over https
// (HTTP/2) or plain http (HTTP/1.1, watches on a WebSocket), with opts.
func (s *soak) client(overTLS bool, opts ...etcdgw.Option) *etcdgw.Client {
	var eps []string
	for i := range s.https {
		if overTLS {
			eps = append(eps, s.https[i].Endpoint("https"))
		} else {
			eps = append(eps, s.plain[i].Endpoint("http"))
		}
	}
	opts = append([]etcdgw.Option{
		etcdgw.WithEndpoints(eps...),
		etcdgw.WithTimeout(3 * time.Second),
		etcdgw.WithDialTimeout(time.Second),
		etcdgw.WithHealthCheck(time.Second, 1),
		etcdgw.WithStreamKeepalive(time.Second, time.Second),
	}, opts...)
	if overTLS {
		opts = append(opts, etcdgw.WithCAFile(s.caFile))
	}
	c, err := etcdgw.New(opts...)
	require.NoError(s.t, err)
	s.t.Cleanup(func() { c.Close() })
	return c
}

func TestSoak(t *testing.T) {
	if etcdtest.External() {
		t.Skip("the soak runs against the embedded etcd; the compatibility run covers the wire")
	}
	length, seed := soakDuration(), soakSeedValue()
	t.Logf("soak: %v of load, seed %d (replay: -soak.seed=%d)", length, seed, seed)
	s := &soak{t: t, opCounts: map[string]int{}, faults: map[string]int{}}
	s.cluster = etcdtest.NewCluster(t, 3, etcdtest.Config{TLS: true, AlsoPlain: true, Name: "soak"})
	s.caFile = s.cluster.Certs().CAFile
	for i := range 3 {
		m := s.cluster.Member(i)
		s.https = append(s.https, tcpProxy(t, m.ClientAddr()))
		l7, err := etcdtest.NewHTTPProxy(m.PlainEndpoint(), etcdtest.HTTPProxyConfig{})
		require.NoError(t, err)
		t.Cleanup(func() { l7.Close() })
		s.l7 = append(s.l7, l7)
		s.plain = append(s.plain, tcpProxy(t, l7.Addr()))
	}
	var plainURLs []string
	for i := range 3 {
		plainURLs = append(plainURLs, s.cluster.Member(i).PlainEndpoint())
	}
	admin, err := etcdgw.New(etcdgw.WithEndpoints(plainURLs...))
	require.NoError(t, err)
	s.admin = admin
	defer s.admin.Close()
	// Member 0 is never touched by a fault: the reference watch reads it
	// directly, and it keeps a quorum with whichever other member is up.
	ref, err := etcdgw.New(etcdgw.WithEndpoints(s.cluster.Member(0).PlainEndpoint()))
	require.NoError(t, err)
	defer ref.Close()
	ctx := testCtx(t)
	first, err := ref.Set(ctx, "/soak/start", "x")
	require.NoError(t, err)
	startRev := first.Header.Revision + 1
	s.start = time.Now()

	// Watchers: the reference on member 0, and soakWatchers through the
	// faulty proxies: over HTTP/2, and over plain http on the shared
	// WebSocket and on a request of their own (WithWatchMultiplexing(false)).
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var wg sync.WaitGroup
	watchers := make([]*soakWatcher, soakWatchers+1)
	for i := range watchers {
		c := ref
		name := "reference"
		if i > 0 {
			var opts []etcdgw.Option
			how := "HTTP/2"
			switch {
			case i%2 == 0:
			case i == 3:
				opts = append(opts, etcdgw.WithWatchMultiplexing(false))
				how = "HTTP/1.1, a request per watch"
			default:
				how = "WebSocket"
			}
			c = s.client(i%2 == 0, opts...)
			name = fmt.Sprintf("watcher %d (%s)", i, how)
		}
		w := &soakWatcher{name: name, delivered: startRev - 1}
		watchers[i] = w
		ch := c.WatchDir(watchCtx, "/soak/", etcdgw.WithRev(startRev))
		wg.Go(func() { w.run(s, ch) })
	}

	// Leases kept alive for the whole run, each with a key attached.
	type holder struct {
		id   etcdgw.LeaseID
		key  string
		lost atomic.Bool
	}
	holders := make([]*holder, soakHolders)
	for i := range holders {
		c := s.client(i%2 == 0)
		g, err := c.Grant(ctx, soakHolderTT)
		require.NoError(t, err)
		h := &holder{id: g.ID, key: fmt.Sprintf("/soak/lease/holder-%d", i)}
		_, err = c.Set(ctx, h.key, "held", etcdgw.WithLease(g.ID))
		require.NoError(t, err)
		ch, err := c.KeepAlive(watchCtx, g.ID)
		require.NoError(t, err)
		holders[i] = h
		wg.Go(func() {
			for range ch {
			}
			if watchCtx.Err() == nil {
				h.lost.Store(true)
				s.anomaly("lease %x: its KeepAlive channel closed during the run", h.id)
			}
		})
	}

	// The load and the faults.
	loadCtx, stopLoad := context.WithTimeout(context.Background(), length)
	defer stopLoad()
	var load sync.WaitGroup
	store := &fencedStore{s: s}
	for i := range soakLockers {
		c := s.client(i%2 == 0)
		load.Go(func() { s.locker(loadCtx, i, c, store) })
	}
	for i := range soakClients {
		c := s.client(i%3 == 0)
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		load.Go(func() { s.worker(loadCtx, i, c, rng) })
	}
	faultRng := rand.New(rand.NewPCG(seed, math.MaxUint64))
	load.Go(func() { s.inject(loadCtx, faultRng, ref, watchers) })
	load.Wait()

	// Heal, write a last key, and wait for every watcher to see it.
	s.heal()
	ctx = testCtx(t) // the setup's has run out during a long run
	last, err := ref.Set(ctx, "/soak/end", "x")
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range watchers {
		for w.deliveredRev() < last.Header.Revision && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := w.deliveredRev(); got < last.Header.Revision {
			s.anomaly("%s: delivered up to revision %d, the store is at %d 30s after the faults healed", w.name, got, last.Header.Revision)
		}
	}
	stopWatch()
	wg.Wait()

	s.checkWatchers(watchers, last.Header.Revision)
	for _, h := range holders {
		ttl, err := ref.TimeToLive(ctx, h.id, true)
		require.NoError(t, err)
		if ttl.TTL <= 0 || !slices.Contains(ttl.Keys, h.key) {
			s.anomaly("lease %x kept alive through the run is gone (TTL %d, keys %v)", h.id, ttl.TTL, ttl.Keys)
		}
	}
	s.checkLinearizable()
	s.report(seed)
	if len(s.anomalies) > 0 {
		t.Fatalf("soak found %d anomalies (seed %d):\n%s", len(s.anomalies), seed, strings.Join(s.anomalies, "\n"))
	}
}

// worker runs random operations until ctx ends.
func (s *soak) worker(ctx context.Context, id int, c *etcdgw.Client, rng *rand.Rand) {
	var seq int
	var maxRev int64 // the highest revision a linearizable read returned
	key := func() string { return fmt.Sprintf("/soak/k/%d", rng.IntN(soakKeys)) }
	for ctx.Err() == nil {
		seq++
		val := fmt.Sprintf("c%d-%d", id, seq)
		opCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		switch n := rng.IntN(100); {
		case n < 30:
			k := key()
			if r, ok := s.get(opCtx, id, c, k); ok {
				if r.Header.Revision < maxRev {
					s.anomaly("client %d: a linearizable read returned revision %d after %d", id, r.Header.Revision, maxRev)
				}
				maxRev = max(maxRev, r.Header.Revision)
			}
		case n < 52:
			k := key()
			call := s.now()
			r, err := c.Set(opCtx, k, val)
			s.count("Set", err)
			s.recordWrite(id, kvInput{op: 'p', key: k, val: val}, call, err, func() kvOutput { return kvOutput{rev: r.Header.Revision} })
		case n < 60:
			k := key()
			call := s.now()
			r, err := c.Delete(opCtx, k)
			s.count("Delete", err)
			s.recordWrite(id, kvInput{op: 'd', key: k}, call, err, func() kvOutput { return kvOutput{ok: r.Deleted > 0} })
		case n < 75:
			// Compare-and-swap on the ModRevision a read just returned.
			k := key()
			g, ok := s.get(opCtx, id, c, k)
			if !ok {
				break
			}
			var rev int64
			if len(g.Kvs) > 0 {
				rev = g.Kvs[0].ModRevision
			}
			call := s.now()
			r, err := c.Txn(opCtx).If(etcdgw.Compare(etcdgw.ModRevision(k), "=", rev)).Then(etcdgw.OpPut(k, val)).Commit()
			s.count("Txn CAS", err)
			s.recordWrite(id, kvInput{op: 'c', key: k, val: val, rev: rev}, call, err, func() kvOutput {
				return kvOutput{ok: r.Succeeded, rev: r.Header.Revision}
			})
		case n < 82:
			k := key()
			call := s.now()
			r, err := c.SetNX(opCtx, k, val)
			s.count("SetNX", err)
			s.recordWrite(id, kvInput{op: 'n', key: k, val: val}, call, err, func() kvOutput {
				return kvOutput{ok: r.Succeeded, rev: r.Header.Revision}
			})
		case n < 90:
			s.readDir(opCtx, c)
		default:
			s.leaseOp(opCtx, id, seq, c, rng)
		}
		cancel()
	}
}

// get reads k and records it; ok is false when it failed.
func (s *soak) get(ctx context.Context, id int, c *etcdgw.Client, k string) (*etcdgw.GetResponse, bool) {
	call := s.now()
	r, err := c.Get(ctx, k)
	ret := s.now()
	s.count("Get", err)
	if err != nil {
		return nil, false
	}
	out := kvOutput{}
	if len(r.Kvs) > 0 {
		out = kvOutput{exists: true, val: decodeString(r.Kvs[0]), rev: r.Kvs[0].ModRevision}
	}
	s.record(id, kvInput{op: 'g', key: k}, out, call, ret)
	return r, true
}

func decodeString(kv *mvccpb.KeyValue) string {
	v, err := strconv.Unquote(string(kv.Value))
	if err != nil {
		return string(kv.Value)
	}
	return v
}

// recordWrite records a write: confirmed with its output, of unknown
// outcome as pending forever, and not at all when it surely failed.
func (s *soak) recordWrite(id int, in kvInput, call int64, err error, out func() kvOutput) {
	switch {
	case err == nil:
		s.record(id, in, out(), call, s.now())
	case errors.Is(err, etcdgw.ErrOutcomeUnknown):
		s.record(id, in, kvOutput{unknown: true}, call, math.MaxInt64)
	}
}

// readDir reads the key space in pages and checks it against one Range at
// the same revision: ReadDir spans keys, so it stays out of the model.
func (s *soak) readDir(ctx context.Context, c *etcdgw.Client) {
	r, err := c.ReadDir(ctx, "/soak/k/", etcdgw.WithLimit(0))
	s.count("ReadDir", err)
	if err != nil {
		return
	}
	at, err := c.Get(ctx, "/soak/k/", etcdgw.WithPrefix(), etcdgw.WithRev(r.Header.Revision))
	if err != nil {
		return // compacted meanwhile, or a fault: nothing to compare
	}
	if !sameKVs(r.Kvs, at.Kvs) {
		s.anomaly("ReadDir at revision %d: %v, a Range at the same revision: %v", r.Header.Revision, keysOf(r.Kvs), keysOf(at.Kvs))
	}
}

func sameKVs(a, b []*mvccpb.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y *mvccpb.KeyValue) bool {
		return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) && x.ModRevision == y.ModRevision
	})
}

func keysOf(kvs []*mvccpb.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision))
	}
	return out
}

// leaseOp grants a short lease with a key on it, then looks at it or
// revokes it. Keys under leases stay out of the model: expiry deletes them.
func (s *soak) leaseOp(ctx context.Context, id, seq int, c *etcdgw.Client, rng *rand.Rand) {
	g, err := c.Grant(ctx, 2)
	s.count("Grant", err)
	if err != nil {
		return
	}
	_, err = c.Set(ctx, fmt.Sprintf("/soak/lease/c%d-%d", id, seq), "v", etcdgw.WithLease(g.ID))
	s.count("Set on a lease", err)
	if rng.IntN(2) == 0 {
		_, err = c.TimeToLive(ctx, g.ID, true)
		s.count("TimeToLive", err)
		return
	}
	_, err = c.Revoke(ctx, g.ID)
	s.count("Revoke", err)
}

// soakWatcher records what one watch delivers.
type soakWatcher struct {
	name      string
	mu        sync.Mutex
	events    []string // "rev key type value"
	delivered int64
	err       error
}

func (w *soakWatcher) deliveredRev() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.delivered
}

func (w *soakWatcher) run(s *soak, ch etcdgw.WatchChan) {
	for r := range ch {
		if err := r.Err(); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		for _, ev := range r.Events {
			w.events = append(w.events, fmt.Sprintf("%d %s %v %s", ev.Kv.ModRevision, ev.Kv.Key, ev.Type, ev.Kv.Value))
			w.delivered = ev.Kv.ModRevision
		}
		if r.IsProgressNotify() {
			w.delivered = max(w.delivered, r.Header.Revision)
		}
		w.mu.Unlock()
	}
}

// checkWatchers compares every watcher's events with the reference's, up to
// the last revision.
func (s *soak) checkWatchers(ws []*soakWatcher, last int64) {
	upTo := func(w *soakWatcher) []string {
		var out []string
		for _, e := range w.events {
			rev, _, _ := strings.Cut(e, " ")
			if n, _ := strconv.ParseInt(rev, 10, 64); n <= last {
				out = append(out, e)
			}
		}
		return out
	}
	want := upTo(ws[0])
	var prev int64
	for _, e := range want {
		rev, _, _ := strings.Cut(e, " ")
		n, _ := strconv.ParseInt(rev, 10, 64)
		if n < prev {
			s.anomaly("reference watch: revision %d after %d", n, prev)
		}
		prev = n
	}
	for _, w := range ws {
		if w.err != nil {
			s.anomaly("%s ended with %v", w.name, w.err)
		}
		got := upTo(w)
		s.mu.Lock()
		s.watchEvts += len(got)
		s.watchedBy = append(s.watchedBy, w.name)
		s.mu.Unlock()
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			s.anomaly("%s: %d events, the reference %d; first difference at %d: got %q, want %q",
				w.name, len(got), len(want), i, at(got, i), at(want, i))
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// inject injects faults at random until ctx ends: several at a time on the
// members other than 0, at most one member stopped at a time so that a
// quorum stays.
func (s *soak) inject(ctx context.Context, rng *rand.Rand, ref *etcdgw.Client, ws []*soakWatcher) {
	tick := time.NewTicker(700 * time.Millisecond)
	defer tick.Stop()
	var compacted int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m := 1 + rng.IntN(2)
		switch f := rng.IntN(100); {
		case f < 22:
			s.fault("connection cut")
			s.https[m].CutAll()
			s.plain[m].CutAll()
		case f < 28:
			s.fault("slow member")
			d := time.Duration(200+rng.IntN(1500)) * time.Millisecond
			s.https[m].SetDelay(d)
			s.plain[m].SetDelay(d)
			sleepCtx(ctx, time.Duration(500+rng.IntN(2000))*time.Millisecond)
			s.https[m].SetDelay(0)
			s.plain[m].SetDelay(0)
		case f < 34:
			reply := []etcdtest.Reply{etcdtest.ReplyBadGateway, etcdtest.ReplyGatewayTimeout, etcdtest.ReplyServiceUnavailable}[rng.IntN(3)]
			s.fault(fmt.Sprintf("proxy answers %d", reply.Status))
			s.l7[m].Reply(reply)
			sleepCtx(ctx, time.Duration(300+rng.IntN(1500))*time.Millisecond)
			s.l7[m].Clear()
		case f < 38:
			s.fault("proxy cuts stream lines and answers")
			s.l7[m].CutLines("", 3)
			s.l7[m].ResetAnswers("", 3)
			sleepCtx(ctx, time.Duration(300+rng.IntN(1000))*time.Millisecond)
			s.l7[m].Clear()
		case f < 50:
			s.fault("black hole")
			s.https[m].Pause()
			s.plain[m].Pause()
			sleepCtx(ctx, time.Duration(500+rng.IntN(2500))*time.Millisecond)
			s.https[m].Resume()
			s.plain[m].Resume()
		case f < 65:
			s.fault("member stopped and restarted")
			s.restart(ctx, m, time.Duration(500+rng.IntN(2000))*time.Millisecond)
		case f < 70:
			if l := s.cluster.Leader(); l > 0 {
				s.fault("leader stopped")
				s.restart(ctx, l, time.Duration(500+rng.IntN(1500))*time.Millisecond)
			}
		case f < 75:
			// Move the leader with the maintenance API to another member.
			l, to := s.cluster.Leader(), rng.IntN(3)
			if l < 0 || l == to {
				break
			}
			id, err := s.cluster.Member(to).MemberID()
			if err != nil {
				break
			}
			mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = s.admin.MoveLeader(mctx, id)
			cancel()
			if err == nil {
				s.fault("leader moved")
			}
		case f < 90:
			// Compact only below what every watcher has delivered.
			low := int64(math.MaxInt64)
			for _, w := range ws {
				low = min(low, w.deliveredRev())
			}
			if low > compacted+1 {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := ref.Compact(cctx, low)
				cancel()
				if err == nil {
					s.fault("compaction")
					compacted = low
				}
			}
		default:
			s.fault("refused connections")
			s.plain[m].SetRefuse(true)
			s.https[m].SetRefuse(true)
			sleepCtx(ctx, time.Duration(200+rng.IntN(1000))*time.Millisecond)
			s.plain[m].SetRefuse(false)
			s.https[m].SetRefuse(false)
		}
	}
}

func (s *soak) fault(kind string) {
	s.mu.Lock()
	s.faults[kind]++
	s.mu.Unlock()
}

// restart stops member m for d, then starts it again.
func (s *soak) restart(ctx context.Context, m int, d time.Duration) {
	member := s.cluster.Member(m)
	if err := member.Stop(); err != nil {
		s.anomaly("stopping member %d: %v", m, err)
		return
	}
	sleepCtx(ctx, d)
	if err := member.Restart(); err != nil {
		s.anomaly("restarting member %d: %v", m, err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// heal ends every fault: members run, proxies forward.
func (s *soak) heal() {
	for i := range s.https {
		s.l7[i].Clear()
		s.https[i].SetDelay(0)
		s.plain[i].SetDelay(0)
		s.https[i].Resume()
		s.plain[i].Resume()
		s.https[i].SetRefuse(false)
		s.plain[i].SetRefuse(false)
		if m := s.cluster.Member(i); !m.Running() {
			if err := m.Restart(); err != nil {
				s.anomaly("restarting member %d: %v", i, err)
			}
		}
	}
}

// checkLinearizable checks the KV history with porcupine; on a violation it
// writes the visualization to the test's artifact directory.
func (s *soak) checkLinearizable() {
	model := kvModel.ToModel()
	model.Partition = kvPartition
	res, info := porcupine.CheckOperationsVerbose(model, s.history, 3*time.Minute)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		s.anomaly("porcupine timed out on %d operations: a failure to investigate", len(s.history))
	default:
		s.anomaly("the KV history of %d operations is not linearizable", len(s.history))
	}
	path := filepath.Join(s.t.ArtifactDir(), "soak-linearizability.html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		s.t.Logf("visualization: %v", err)
		return
	}
	s.t.Logf("porcupine's visualization: %s", path)
}

// report logs what the run did.
func (s *soak) report(seed uint64) {
	var b strings.Builder
	fmt.Fprintf(&b, "soak report (seed %d)\n", seed)
	fmt.Fprintf(&b, "  operations by kind and outcome:\n")
	for _, k := range sortedKeys(s.opCounts) {
		fmt.Fprintf(&b, "    %-40s %6d\n", k, s.opCounts[k])
	}
	fmt.Fprintf(&b, "  faults injected:\n")
	for _, k := range sortedKeys(s.faults) {
		fmt.Fprintf(&b, "    %-40s %6d\n", k, s.faults[k])
	}
	fmt.Fprintf(&b, "  KV operations checked for linearizability: %d\n", len(s.history))
	fmt.Fprintf(&b, "  writes of unknown outcome: %d\n", s.unknown)
	fmt.Fprintf(&b, "  lock holders: %d; fenced writes accepted: %d, refused (stale token): %d; holders that lost their key while their lease lived: %d\n",
		s.holds, s.fenced, s.fencedRefused, s.lostToDeletion)
	fmt.Fprintf(&b, "  watch events checked: %d, by %s\n", s.watchEvts, strings.Join(s.watchedBy, ", "))
	fmt.Fprintf(&b, "  anomalies: %d\n", len(s.anomalies))
	s.t.Log(b.String())
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fencedStore is an external store that accepts a write only with a fencing
// token at least as high as the highest it has accepted: what a lock holder
// passes its Mutex.Token to. It checks the lock's promises as they happen.
type fencedStore struct {
	s       *soak
	mu      sync.Mutex
	highest int64
	owner   map[int64]int // token -> the locker that wrote with it
	last    *lockHold     // the holder of the highest token
}

// lockHold is one holding of the lock by a locker.
type lockHold struct {
	locker   int
	token    int64
	m        *concurrency.Mutex
	sess     *concurrency.Session
	released atomic.Bool // Unlock was called: the holder stopped acting on the lock
}

// write accepts or refuses a write of h.
func (f *fencedStore) write(h *lockHold) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owner == nil {
		f.owner = map[int64]int{}
	}
	if h.token < f.highest {
		f.s.mu.Lock()
		f.s.fencedRefused++
		f.s.mu.Unlock()
		return false
	}
	if o, ok := f.owner[h.token]; ok && o != h.locker {
		f.s.anomaly("fencing: lockers %d and %d both wrote with token %d", o, h.locker, h.token)
	}
	if prev := f.last; prev != nil && prev != h && h.token > prev.token && !prev.released.Load() && !isClosed(prev.m.Done()) {
		// The previous holder has not learned yet that it lost the lock.
		// That is allowed when its key was deleted while its lease lives
		// (its own Unlock of unknown outcome, applied late, deleting the
		// key a new Mutex of the same session reused): its token, lower,
		// is refused from now on. It is a violation when its lease is gone:
		// the session's own clock must end it first.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ttl, err := f.s.admin.TimeToLive(ctx, prev.sess.Lease(), false)
		cancel()
		switch {
		case err == nil && ttl.TTL > 0:
			f.s.mu.Lock()
			f.s.lostToDeletion++
			f.s.mu.Unlock()
		default:
			f.s.anomaly("fencing: locker %d still held token %d (Done open, not unlocked, lease %x gone: %v) when locker %d's first write with token %d was accepted",
				prev.locker, prev.token, prev.sess.Lease(), err, h.locker, h.token)
		}
	}
	f.highest, f.owner[h.token], f.last = h.token, h.locker, h
	f.s.mu.Lock()
	f.s.fenced++
	f.s.mu.Unlock()
	return true
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// locker takes the lock in turns with the other lockers, on sessions with a
// short TTL that the faults may let expire, and writes through the fencing
// store while it holds the lock.
func (s *soak) locker(ctx context.Context, id int, c *etcdgw.Client, store *fencedStore) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(c, concurrency.WithTTL(soakLockTTL), concurrency.WithContext(ctx))
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			if isClosed(sess.Done()) {
				break
			}
			m := concurrency.NewMutex(sess, "/soak/lock")
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := m.Lock(lctx)
			cancel()
			if err != nil {
				if isClosed(sess.Done()) {
					break
				}
				continue
			}
			h := &lockHold{locker: id, token: m.Token(), m: m, sess: sess}
			s.mu.Lock()
			s.holds++
			s.mu.Unlock()
			for range 3 {
				if isClosed(m.Done()) || !store.write(h) {
					break
				}
				sleepCtx(ctx, 50*time.Millisecond)
			}
			h.released.Store(true)
			uctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			m.Unlock(uctx)
			cancel()
		}
		sess.Close()
	}
}
