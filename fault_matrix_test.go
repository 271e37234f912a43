package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// The fault matrix: every fault of a real deployment against every kind of
// call, with one member and with three, against real etcd behind the fault
// proxies of internal/etcdtest. The expected outcome of each cell is written
// in faultMatrix below, from DESIGN.md's "Which calls are writes" and
// "Writes of unknown outcome". Print the matrix with
//
//	go test -race -count=1 -run TestFaultMatrix -v . |
//	  awk '/^ *\| Fault/{on=1} on&&!/^ *\|/{exit} on{sub(/^ +/,""); print}'
//
// Each row runs its cells at once, each with a client and proxies of its
// own, in three phases: before the fault (a watch opened, a lease kept
// alive), during it (the call under test, events written), after it (the
// call succeeds again, the watch delivers every event once, the lease
// lives).

// mxOp is a column of the matrix.
type mxOp int

const (
	opGet mxOp = iota
	opReadDir
	opSet
	opTxn
	opDelete
	opWatch
	opKeepAlive
	opGrant
	// opWatchOwn is a watch on a request of its own (WithWatchMultiplexing(false));
	// opWatch shares its member's stream: a WebSocket with the one member
	// (plain http), HTTP/2 with the three (https). Its expected outcomes are
	// opWatch's.
	opWatchOwn
	nOps
)

var opNames = [nOps]string{"Get", "ReadDir", "Set", "Txn", "Delete", "Watch", "KeepAlive", "Grant", "Watch (own request)"}

func init() {
	for i := range faultMatrix {
		r := &faultMatrix[i]
		r.one[opWatchOwn], r.three[opWatchOwn] = r.one[opWatch], r.three[opWatch]
	}
}

// isWatch reports the ops that watch.
func isWatch(op mxOp) bool { return op == opWatch || op == opWatchOwn }

// outcome is what a cell expects.
type outcome string

const (
	na          outcome = ""            // the fault does not apply to the call
	ok          outcome = "ok"          // success, possibly on another member
	unavailable outcome = "unavailable" // ErrUnavailable, never ErrOutcomeUnknown; the context's error if the deadline ended it
	unknown     outcome = "unknown"     // ErrOutcomeUnknown; the context's error if the deadline ended it
	unknownOK   outcome = "unknown→ok"  // of three calls, the one that reached the faulty member first is unknown, the others succeed
	resumes     outcome = "resumes"     // the watch delivers every event once, across the fault
	compacted   outcome = "compacted"   // the watch ends with ErrCompacted and CompactRevision
	kept        outcome = "kept"        // the lease lives and is renewed after the fault
)

// Timing of the matrix: small, so that each cell is quick, and generous
// enough for a loaded machine.
const (
	mxCallDeadline = 10 * time.Second
	mxSlack        = 3 * time.Second         // a call may overrun its deadline by this much
	mxAttempt      = 3 * time.Second         // a healthy member's write under -race on a loaded machine took over 2 s
	mxDelay        = 5 * time.Second         // of an answer: longer than an attempt
	mxIdle         = 1500 * time.Millisecond // a unary answer under -race on a loaded machine can pass 300ms in silence
	mxLeaseTTL     = 15                      // renewed every 5 s; a fault lasts at most about mxCallDeadline
	mxKeepDuring   = 5500 * time.Millisecond
	mxRowsAtOnce   = 6
	mxDirKeys      = 600 // more than one ReadDir page
)

// layer is where a row's faults are injected.
type layer int

const (
	layerTCP     layer = iota // a TCP Proxy in front of each member
	layerHTTP                 // an HTTPProxy, plain http to the client, in front of each member
	layerHTTPS                // an HTTPProxy over https (HTTP/2) in front of each member
	layerMembers              // no proxy: the fault is done to the members
)

// mxRow is a row of the matrix: a fault and what each call expects under it.
type mxRow struct {
	fault string
	layer layer
	// stream: every cell opens a watch through its client before the
	// fault, which the fault cuts; the call under test runs after the cut.
	stream bool
	// ownRequests: the watches of the row's cells are requests of their
	// own (WithWatchMultiplexing(false)): the fault is one of HTTP/1.1
	// answers, which a WebSocket does not have.
	ownRequests bool
	// own: the row needs a one-member server of its own (it stops,
	// compacts, or serves TLS), and with three members runs after the
	// others, alone.
	own bool
	tls bool // one member: the own server serves https
	// target picks the member the fault hits, with three members.
	target func(r *rowRun) int
	on     func(r *rowRun)
	off    func(r *rowRun)
	one    [nOps]outcome
	three  [nOps]outcome
}

// The expected outcomes, by row: Get, ReadDir, Set, Txn, Delete, Watch,
// KeepAlive, Grant; a watch on a request of its own expects what Watch does. The three members speak TLS, so a member behind a TCP
// fault (hung, late, frozen) never completes the handshake: the request is
// never sent, and a write goes to the next member like a read. Over plain
// HTTP (the one member) the request is sent, and a write's outcome is
// unknown.
var faultMatrix = []mxRow{
	{
		fault: "connect refused", layer: layerTCP,
		on:    eachTCP(func(p *etcdtest.Proxy) { p.SetRefuse(true); p.CutAll() }),
		off:   eachTCP(func(p *etcdtest.Proxy) { p.SetRefuse(false) }),
		one:   [nOps]outcome{unavailable, unavailable, unavailable, unavailable, unavailable, resumes, kept, unavailable},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "accept, never answer", layer: layerTCP,
		on:    eachTCP(func(p *etcdtest.Proxy) { p.SetHang(true); p.CutAll() }),
		off:   eachTCP(func(p *etcdtest.Proxy) { p.SetHang(false) }),
		one:   [nOps]outcome{unavailable, unavailable, unknown, unknown, unknown, resumes, kept, unknown},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "answer after the attempt timeout", layer: layerTCP,
		on:    eachTCP(func(p *etcdtest.Proxy) { p.SetDelay(mxDelay) }),
		off:   eachTCP(func(p *etcdtest.Proxy) { p.SetDelay(0) }),
		one:   [nOps]outcome{unavailable, unavailable, unknown, unknown, unknown, resumes, kept, unknown},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "reset in the middle of an answer", layer: layerHTTP,
		on:    eachHTTP(func(p *etcdtest.HTTPProxy) { p.ResetAnswers("", 0); p.CutStreams() }),
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{unavailable, unavailable, unknown, unknown, unknown, resumes, kept, unknown},
		three: [nOps]outcome{ok, ok, unknownOK, unknownOK, unknownOK, resumes, kept, unknownOK},
	},
	{
		fault: "stream cut mid-line, HTTP/1.1", layer: layerHTTP, stream: true, ownRequests: true,
		on:    eachHTTP(func(p *etcdtest.HTTPProxy) { p.CutLines("/v3/watch", 1) }),
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "stream cut mid-line, HTTP/2", layer: layerHTTPS, stream: true, own: true, tls: true,
		on:    eachHTTP(func(p *etcdtest.HTTPProxy) { p.CutLines("/v3/watch", 1) }),
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "idle stream cut by a proxy", layer: layerHTTP, stream: true,
		on:    eachHTTP(func(p *etcdtest.HTTPProxy) { p.SetIdleTimeout(mxIdle) }),
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	replyRow("proxy's 502", etcdtest.ReplyBadGateway),
	replyRow("proxy's 503", etcdtest.ReplyServiceUnavailable),
	replyRow("proxy's 504", etcdtest.ReplyGatewayTimeout),
	replyRow("stopping member's 499", etcdtest.ReplyClientConnClosing),
	{
		fault: "member stopped, restarted", layer: layerMembers, own: true,
		target: follower3,
		on:     func(r *rowRun) { r.member(r.target).Stop() },
		off:    restartTarget,
		one:    [nOps]outcome{unavailable, unavailable, unavailable, unavailable, unavailable, resumes, kept, unavailable},
		three:  [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "member frozen, resumed", layer: layerTCP,
		on:    eachTCP((*etcdtest.Proxy).Pause),
		off:   eachTCP((*etcdtest.Proxy).Resume),
		one:   [nOps]outcome{unavailable, unavailable, unknown, unknown, unknown, resumes, kept, unknown},
		three: [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		// One member cannot lose its leader and keep serving.
		fault: "leader loss", layer: layerMembers, own: true,
		target: leader3,
		on:     stopLeader,
		off:    restartTarget,
		three:  [nOps]outcome{ok, ok, ok, ok, ok, resumes, kept, ok},
	},
	{
		fault: "compaction (ReadDir pages, watch resume)", layer: layerHTTP, own: true,
		on:    compactDuring,
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{na, ok, na, na, na, compacted, na, na},
		three: [nOps]outcome{na, ok, na, na, na, compacted, na, na},
	},
}

// replyRow is the row of a proxy or member that answers r for etcd.
func replyRow(fault string, r etcdtest.Reply) mxRow {
	return mxRow{
		fault: fault, layer: layerHTTP,
		on:    eachHTTP(func(p *etcdtest.HTTPProxy) { p.Reply(r); p.CutStreams() }),
		off:   eachHTTP((*etcdtest.HTTPProxy).Clear),
		one:   [nOps]outcome{unavailable, unavailable, unknown, unknown, unknown, resumes, kept, unknown},
		three: [nOps]outcome{ok, ok, unknownOK, unknownOK, unknownOK, resumes, kept, unknownOK},
	}
}

// members is one etcd or a cluster, as the matrix uses them.
type members struct {
	name      string
	servers   []*etcdtest.Server
	cluster   *etcdtest.Cluster // nil for one member
	certs     *etcdtest.Certs   // nil for plain http
	endpoints []string
	ids       []uint64
}

func newMembers(name string, cl *etcdtest.Cluster, servers ...*etcdtest.Server) (*members, error) {
	m := &members{name: name, cluster: cl, servers: servers}
	for _, s := range servers {
		m.endpoints = append(m.endpoints, s.Endpoint())
		id, err := s.MemberID()
		if err != nil {
			return nil, err
		}
		m.ids = append(m.ids, id)
	}
	if strings.HasPrefix(servers[0].Endpoint(), "https://") {
		m.certs = servers[0].Certs()
	}
	return m, nil
}

// clientOptions are those of the clients under test, of endpoints eps.
func (m *members) clientOptions(eps []string) []etcdgw.Option {
	opts := []etcdgw.Option{
		etcdgw.WithEndpoints(eps...),
		etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithDialTimeout(mxAttempt),
		etcdgw.WithAttemptTimeout(mxAttempt),
		// A /health answer can take over 500ms under -race on a loaded machine:
		// a probe that short would move a healthy watch off its member.
		etcdgw.WithStreamKeepalive(500*time.Millisecond, 3*time.Second),
		etcdgw.WithHealthCheck(500*time.Millisecond, 1),
		etcdgw.WithTimeout(mxCallDeadline),
	}
	if strings.HasPrefix(eps[0], "https://") {
		opts = append(opts, etcdgw.WithCAFile(m.certs.CAFile))
	}
	return opts
}

// rowRun is one row run against one set of members.
type rowRun struct {
	row    *mxRow
	m      *members
	target int // the member the fault hits
	cells  []*cell
}

func (r *rowRun) three() bool                   { return len(r.m.servers) == 3 }
func (r *rowRun) member(i int) *etcdtest.Server { return r.m.servers[i] }

func (r *rowRun) want(op mxOp) outcome {
	if r.three() {
		return r.row.three[op]
	}
	return r.row.one[op]
}

// cell is one call under one fault.
type cell struct {
	cellLog
	r      *rowRun
	op     mxOp
	want   outcome
	ctx    context.Context
	prefix string

	tcp    []*etcdtest.Proxy
	http   []*etcdtest.HTTPProxy
	client *etcdgw.Client // through the proxies
	writer *etcdgw.Client // straight to the members, under the same key prefix

	watch    *watchRecorder
	unwatch  context.CancelFunc
	startRev int64 // the revision of the last event before the fault
	during   int64 // the revision of the last event written during the fault

	lease  etcdgw.LeaseID
	ka     *keepAliveRecorder
	offAt  time.Time
	hooked atomic.Int64 // compactions done between ReadDir pages

	closers []func()
}

func (c *cell) name() string { return c.r.row.fault + "/" + opNames[c.op] }

func eachTCP(f func(p *etcdtest.Proxy)) func(r *rowRun) {
	return func(r *rowRun) {
		for _, c := range r.live() {
			f(c.tcp[r.target])
		}
	}
}

func eachHTTP(f func(p *etcdtest.HTTPProxy)) func(r *rowRun) {
	return func(r *rowRun) {
		for _, c := range r.live() {
			f(c.http[r.target])
		}
	}
}

func (r *rowRun) live() []*cell {
	var live []*cell
	for _, c := range r.cells {
		if !c.isDead() {
			live = append(live, c)
		}
	}
	return live
}

func follower3(r *rowRun) int {
	if !r.three() {
		return 0
	}
	l := waitLeader(r.m.cluster)
	return (l + 1) % 3
}

func leader3(r *rowRun) int { return max(waitLeader(r.m.cluster), 0) }

// waitLeader polls for a leader for up to 20 s, -1 if none.
func waitLeader(cl *etcdtest.Cluster) int {
	l := -1
	pollUntil(20*time.Second, func() bool { l = cl.Leader(); return l >= 0 })
	return l
}

func stopLeader(r *rowRun) {
	old := r.target
	r.member(old).Stop()
	if l := waitLeader(r.m.cluster); l < 0 || l == old {
		for _, c := range r.cells {
			c.errorf("no new leader within 20 s of stopping member %d", old)
		}
	}
}

func restartTarget(r *rowRun) {
	if err := r.member(r.target).Restart(); err != nil {
		for _, c := range r.cells {
			c.errorf("restart member %d: %v", r.target, err)
		}
	}
}

// compactDuring compacts between the pages of a ReadDir, and while a watch
// cannot resume (its member answers 503 to watches and its stream is cut).
func compactDuring(r *rowRun) {
	for _, c := range r.live() {
		switch c.op {
		case opReadDir:
			var ranges atomic.Int64
			for _, p := range c.http {
				p.SetBeforeForward(func(req *http.Request) {
					if req.URL.Path != "/v3/kv/range" || ranges.Add(1) != 2 {
						return
					}
					if err := c.compact(); err != nil {
						c.errorf("compact between pages: %v", err)
						return
					}
					c.hooked.Add(1)
				})
			}
		case opWatch, opWatchOwn:
			for _, p := range c.http {
				reply := etcdtest.ReplyServiceUnavailable
				reply.Path = "/v3/watch"
				p.Reply(reply)
				p.CutStreams()
			}
		}
	}
}

// compact writes a key and compacts up to it.
func (c *cell) compact() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.writer.Set(ctx, "x", "compact")
	if err != nil {
		return err
	}
	err = c.writer.Compact(ctx, resp.Header.Revision)
	if errors.Is(err, etcdgw.ErrCompacted) {
		return nil // another cell of the row has compacted further
	}
	return err
}

// newClient returns a client of the cell's proxies (or members).
func (c *cell) newClient() (*etcdgw.Client, error) {
	var eps []string
	switch {
	case len(c.tcp) > 0:
		scheme := "http"
		if c.r.m.certs != nil {
			scheme = "https"
		}
		for _, p := range c.tcp {
			eps = append(eps, p.Endpoint(scheme))
		}
	case len(c.http) > 0:
		for _, p := range c.http {
			eps = append(eps, p.Endpoint())
		}
	default:
		eps = c.r.m.endpoints
	}
	opts := append(c.r.m.clientOptions(eps), etcdgw.WithKeyPrefix(c.prefix))
	if c.op == opWatchOwn || c.r.row.ownRequests {
		opts = append(opts, etcdgw.WithWatchMultiplexing(false))
	}
	return etcdgw.New(opts...)
}

// setUp starts the cell's proxies and clients.
func (c *cell) setUp() {
	m := c.r.m
	for i, s := range m.servers {
		switch c.r.row.layer {
		case layerTCP:
			p, err := etcdtest.NewProxy(s.ClientAddr())
			if err != nil {
				c.fatalf("proxy: %v", err)
				return
			}
			c.closers = append(c.closers, func() { p.Close() })
			c.tcp = append(c.tcp, p)
		case layerHTTP, layerHTTPS:
			cfg := etcdtest.HTTPProxyConfig{}
			if m.certs != nil {
				tlsCfg, err := m.certs.ClientTLSConfig()
				if err != nil {
					c.fatalf("client TLS: %v", err)
					return
				}
				cfg.TargetTLS = tlsCfg
			}
			if c.r.row.layer == layerHTTPS {
				cfg.Certs = m.certs
			}
			p, err := etcdtest.NewHTTPProxy(m.endpoints[i], cfg)
			if err != nil {
				c.fatalf("http proxy: %v", err)
				return
			}
			c.closers = append(c.closers, func() { p.Close() })
			c.http = append(c.http, p)
		}
	}
	// The writer sets up and checks: it has etcdgw's default attempt
	// timeouts, which a loaded machine does not reach.
	opts := []etcdgw.Option{etcdgw.WithEndpoints(m.endpoints...), etcdgw.WithKeyPrefix(c.prefix),
		etcdgw.WithTimeout(10 * time.Second), etcdgw.WithHealthCheck(500*time.Millisecond, 1)}
	if m.certs != nil {
		opts = append(opts, etcdgw.WithCAFile(m.certs.CAFile))
	}
	w, err := etcdgw.New(opts...)
	if err != nil {
		c.fatalf("writer: %v", err)
		return
	}
	c.writer = w
	c.closers = append(c.closers, func() { w.Close() })
}

// put writes key=value straight to the members, retrying until it is
// confirmed (a retried put may write twice: the watch is compared with
// etcd's history, not with the puts), and returns its revision.
func (c *cell) put(key, value string) int64 {
	var rev int64
	var last error
	if !pollUntil(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(c.ctx, mxCallDeadline)
		defer cancel()
		resp, err := c.writer.Set(ctx, key, value)
		if err != nil {
			last = err
			return false
		}
		rev = resp.Header.Revision
		return true
	}) {
		c.errorf("put %s straight to the members: %v", key, last)
	}
	return rev
}

// prepare sets the cell up before the fault.
func (c *cell) prepare() {
	c.setUp()
	if c.isDead() {
		return
	}
	switch c.op {
	case opGet:
		c.put("k", "v")
	case opReadDir:
		n := 3
		if strings.HasPrefix(c.r.row.fault, "compaction") {
			n = mxDirKeys
		}
		for i := 0; i < n; i += 100 {
			var ops []etcdgw.Op
			for j := i; j < min(i+100, n); j++ {
				ops = append(ops, etcdgw.OpPut(fmt.Sprintf("dir/%04d", j), j))
			}
			if _, err := c.writer.Txn(c.ctx).Then(ops...).Commit(); err != nil {
				c.fatalf("fill dir: %v", err)
				return
			}
		}
	case opDelete:
		c.put("d", "v")
	case opKeepAlive:
		g, err := c.writer.Grant(c.ctx, mxLeaseTTL)
		if err != nil {
			c.fatalf("grant: %v", err)
			return
		}
		c.lease = g.ID
	}
	if isWatch(c.op) || c.r.row.stream {
		c.openWatch()
		if c.isDead() {
			return
		}
	}
	if c.client == nil {
		cl, err := c.newClient()
		if err != nil {
			c.fatalf("client: %v", err)
			return
		}
		c.client = cl
		c.closers = append(c.closers, func() { cl.Close() })
	}
	if c.op == opKeepAlive {
		ch, err := c.client.KeepAlive(c.ctx, c.lease)
		if err != nil {
			c.fatalf("KeepAlive: %v", err)
			return
		}
		c.ka = recordKeepAlive(ch)
		if renewed, _ := c.ka.renewedAfter(time.Time{}, 10*time.Second); !renewed {
			c.fatalf("no first renewal")
		}
	}
}

// openWatch watches w/ through a client whose watch lands on the target
// member: with three members, clients are made until one does.
func (c *cell) openWatch() {
	for try := 0; ; try++ {
		cl, err := c.newClient()
		if err != nil {
			c.fatalf("client: %v", err)
			return
		}
		ctx, cancel := context.WithCancel(c.ctx)
		ch := cl.Watch(ctx, "w/", etcdgw.WithPrefix())
		var first etcdgw.WatchResponse
		select {
		case first = <-ch:
		case <-time.After(10 * time.Second):
		}
		if !first.Created {
			cancel()
			cl.Close()
			c.fatalf("watch: first response %+v (err %v), want created", first, first.Err())
			return
		}
		if first.Header.MemberID == c.r.m.ids[c.r.target] || try == 30 {
			if try == 30 {
				c.errorf("no watch landed on member %d in 30 tries", c.r.target)
			}
			c.client, c.unwatch = cl, cancel
			c.closers = append(c.closers, func() { cancel(); cl.Close() })
			c.watch = recordWatch(ch)
			break
		}
		cancel()
		cl.Close()
	}
	c.startRev = c.put("w/a", "before")
	if _, got := c.watch.upTo(c.startRev, 10*time.Second); !got {
		c.fatalf("watch did not see the event before the fault")
	}
}

// call runs the cell's unary call once.
func (c *cell) call(ctx context.Context, i int) error {
	var err error
	switch c.op {
	case opGet:
		var r *etcdgw.GetResponse
		if r, err = c.client.Get(ctx, "k"); err == nil && len(r.Kvs) != 1 {
			err = fmt.Errorf("get returned %d keys, want 1", len(r.Kvs))
		}
	case opReadDir:
		err = c.readDir(ctx)
	case opSet:
		_, err = c.client.Set(ctx, fmt.Sprintf("s%d", i), "v")
	case opTxn:
		key := fmt.Sprintf("t%d", i)
		_, err = c.client.Txn(ctx).If(etcdgw.Compare(etcdgw.Version(key), "<", 1<<30)).Then(etcdgw.OpPut(key, "v")).Commit()
	case opDelete:
		_, err = c.client.Delete(ctx, "d")
	case opGrant:
		_, err = c.client.Grant(ctx, 5)
	}
	return err
}

// readDir checks that a ReadDir returns each key of the directory once.
func (c *cell) readDir(ctx context.Context) error {
	r, err := c.client.ReadDir(ctx, "dir/")
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(r.Kvs))
	for _, kv := range r.Kvs {
		if seen[string(kv.Key)] {
			return fmt.Errorf("ReadDir returned %s twice", kv.Key)
		}
		seen[string(kv.Key)] = true
	}
	want := 3
	if strings.HasPrefix(c.r.row.fault, "compaction") {
		want = mxDirKeys
	}
	if len(seen) != want {
		return fmt.Errorf("ReadDir returned %d keys, want %d", len(seen), want)
	}
	return nil
}

// timedCall runs one call under the matrix's deadline, checks that it ends
// in time, and returns its error and, if the deadline passed, the context's.
func (c *cell) timedCall(i int) (err, ctxErr error) {
	ctx, cancel := context.WithTimeout(c.ctx, mxCallDeadline)
	defer cancel()
	start := time.Now()
	err = c.call(ctx, i)
	if elapsed := time.Since(start); elapsed > mxCallDeadline+mxSlack {
		c.errorf("call %d took %v, past its deadline %v + %v", i, elapsed.Round(time.Millisecond), mxCallDeadline, mxSlack)
	}
	return err, ctx.Err()
}

// whileFaulty runs the cell's part during the fault.
func (c *cell) whileFaulty() {
	if c.r.row.stream {
		// The call runs once a stream of its client has been cut.
		c.during = c.put("w/b", "during")
		if !pollUntil(20*time.Second, func() bool { return c.http[c.r.target].Cuts() > 0 }) {
			c.errorf("the proxy cut no stream within 20 s")
		}
	}
	switch c.op {
	case opWatch, opWatchOwn:
		c.watchDuring()
	case opKeepAlive:
		time.Sleep(mxKeepDuring) // a renewal falls in the fault
	default:
		if c.want == ok && strings.HasPrefix(c.r.row.fault, "compaction") {
			err, ctxErr := c.timedCall(0)
			if p := checkOutcome(ok, err, ctxErr); p != "" {
				c.errorf("ReadDir across a compaction: %s", p)
			}
			if c.hooked.Load() != 1 {
				c.errorf("no compaction happened between the pages")
			}
			return
		}
		if !c.r.three() {
			err, ctxErr := c.timedCall(0)
			if p := checkOutcome(c.want, err, ctxErr); p != "" {
				c.errorf("%s", p)
			}
			return
		}
		// Three calls, round-robin from one member to the next: exactly
		// one of them starts at the faulty member, which the others then
		// skip. Its outcome is unknown for a write it reached.
		var failed []string
		for i := range 3 {
			err, ctxErr := c.timedCall(i)
			if err == nil {
				continue
			}
			failed = append(failed, fmt.Sprintf("call %d: %v", i, err))
			want := unknown
			if c.want == ok {
				want = ok
			}
			if p := checkOutcome(want, err, ctxErr); p != "" {
				c.errorf("call %d: %s", i, p)
			}
		}
		if c.want == unknownOK && len(failed) != 1 {
			c.errorf("%d of 3 calls failed, want exactly 1 (the one that reached the faulty member): %v", len(failed), failed)
		}
	}
}

func (c *cell) watchDuring() {
	if c.r.row.layer == layerMembers && !c.r.three() {
		return // the only member is down: nothing can be written
	}
	if !c.r.row.stream {
		c.put("w/b", "during")
	}
	if strings.HasPrefix(c.r.row.fault, "compaction") {
		c.during = c.put("w/c", "during")
		if err := c.compact(); err != nil {
			c.errorf("compact: %v", err)
		}
		return
	}
	c.during = c.put("w/c", "during")
	if c.r.three() {
		// Two members are fine: the watch goes on through them.
		if _, got := c.watch.upTo(c.during, 10*time.Second); !got {
			c.errorf("the events written during the fault did not arrive within 10 s while two members were fine")
		}
	}
}

// afterFault checks the cell once the fault is over.
func (c *cell) afterFault() {
	switch c.op {
	case opWatch, opWatchOwn:
		if c.want == compacted {
			c.watchCompacted()
			return
		}
		c.watchResumed()
	case opKeepAlive:
		renewed, closed := c.ka.renewedAfter(c.offAt, 15*time.Second)
		if !closed.IsZero() {
			c.errorf("the KeepAlive channel closed at %v, with the fault over at %v", closed.Format("15:04:05.000"), c.offAt.Format("15:04:05.000"))
		}
		if !renewed {
			c.errorf("no renewal within 15 s of the fault's end")
		}
		ttl, err := c.writer.TimeToLive(c.ctx, c.lease, false)
		if err != nil || ttl.TTL <= 0 {
			c.errorf("lease after the fault: TTL %v, %v; want alive", ttl, err)
		}
	default:
		// The call works again once the fault is over.
		var last error
		if !pollUntil(15*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(c.ctx, mxCallDeadline)
			defer cancel()
			last = c.call(ctx, 10)
			return last == nil
		}) {
			c.errorf("no success within 15 s of the fault's end: %v", last)
		}
	}
}

func (c *cell) watchResumed() {
	end := c.put("w/d", "after")
	got, reached := c.watch.upTo(end, 20*time.Second)
	errs, _, closed := c.watch.state()
	if !reached {
		c.errorf("the watch did not reach revision %d within 20 s of the fault's end (closed %v, errors %v); got %s", end, closed, errs, eventsString(got))
		return
	}
	if len(errs) > 0 || closed {
		c.errorf("the watch reported %v (closed %v)", errs, closed)
	}
	want, err := c.history(c.startRev, end)
	if err != nil {
		c.errorf("history: %v", err)
		return
	}
	if eventsString(got) != eventsString(want) {
		c.errorf("watched %s\nwant (etcd's history) %s", eventsString(got), eventsString(want))
	}
}

func (c *cell) watchCompacted() {
	if !c.watch.waitUntil(20*time.Second, func() bool { return c.watch.closed }) {
		c.errorf("the watch is still open 20 s after its resume point was compacted")
	}
	errs, compactRev, _ := c.watch.state()
	if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs), "compacted") {
		c.errorf("watch errors %v, want one ErrCompacted", errs)
	}
	if compactRev == 0 {
		c.errorf("no response carried CompactRevision")
	}
}

// history is every event under w/ from from to to, by a fresh watch.
func (c *cell) history(from, to int64) ([]watchEvent, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	w := recordWatch(c.writer.Watch(ctx, "w/", etcdgw.WithPrefix(), etcdgw.WithRev(from)))
	evs, got := w.upTo(to, 15*time.Second)
	cancel()
	<-w.done
	if !got {
		return nil, fmt.Errorf("a fresh watch did not reach revision %d: %s", to, eventsString(evs))
	}
	return evs, nil
}

func (c *cell) close() {
	if c.unwatch != nil {
		c.unwatch()
	}
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	if c.watch != nil {
		<-c.watch.done
	}
	if c.ka != nil {
		<-c.ka.done
	}
}

// run runs the row's cells in their three phases.
func (r *rowRun) run(ctx context.Context, prefix string) {
	if r.row.target != nil {
		r.target = r.row.target(r)
	}
	for op := range nOps {
		if want := r.want(op); want != na {
			r.cells = append(r.cells, &cell{r: r, op: op, want: want, ctx: ctx,
				prefix: fmt.Sprintf("%s%s/%s/%d/", prefix, r.m.name, strings.ReplaceAll(r.row.fault, " ", "_"), op)})
		}
	}
	if len(r.cells) == 0 {
		return
	}
	defer eachConcurrently(r.cells, (*cell).close)
	eachConcurrently(r.cells, func(c *cell) { c.guard("before the fault", c.prepare) })
	r.row.on(r)
	eachConcurrently(r.cells, func(c *cell) { c.guard("during the fault", c.whileFaulty) })
	r.row.off(r)
	offAt := time.Now()
	eachConcurrently(r.cells, func(c *cell) {
		c.offAt = offAt
		c.guard("after the fault", c.afterFault)
	})
}

func TestFaultMatrix(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prefix := testPrefix(t)

	one, err := newMembers("one", nil, shared)
	if err != nil {
		t.Fatal(err)
	}
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "matrix", TLS: true})
	three, err := newMembers("three", cl, cl.Member(0), cl.Member(1), cl.Member(2))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh cluster may still be settling: a write through each member
	// before the first cell.
	if waitLeader(cl) < 0 {
		t.Fatal("the cluster has no leader")
	}
	for _, ep := range three.endpoints {
		w, err := etcdgw.New(etcdgw.WithEndpoints(ep), etcdgw.WithCAFile(three.certs.CAFile), etcdgw.WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Set(ctx, "warm-up", ep)
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	runs := make([][2]*rowRun, len(faultMatrix))
	var wg sync.WaitGroup
	// A loaded machine answers healthy calls within an attempt timeout only
	// if not every row runs at once.
	sem := make(chan struct{}, mxRowsAtOnce)
	run := func(r *rowRun) {
		sem <- struct{}{}
		defer func() { <-sem }()
		r.run(ctx, prefix)
	}
	// One member: every row at once, those that stop or compact on a
	// server of their own.
	for i := range faultMatrix {
		row := &faultMatrix[i]
		r := &rowRun{row: row, m: one}
		runs[i][0] = r
		if !row.own {
			wg.Go(func() { run(r) })
			continue
		}
		if row.one == [nOps]outcome{} {
			continue
		}
		s := etcdtest.NewServer(t, etcdtest.Config{Name: "matrix-own", TLS: row.tls})
		m, err := newMembers("one", nil, s)
		if err != nil {
			t.Fatal(err)
		}
		r.m = m
		wg.Go(func() { run(r) })
	}
	// Three members: the rows that only disturb their own proxies at once,
	// then those that stop or compact the cluster, one by one.
	wg.Go(func() {
		var inner sync.WaitGroup
		for i := range faultMatrix {
			if row := &faultMatrix[i]; !row.own || row.layer == layerHTTPS {
				r := &rowRun{row: row, m: three}
				runs[i][1] = r
				inner.Go(func() { run(r) })
			}
		}
		inner.Wait()
		for i := range faultMatrix {
			if row := &faultMatrix[i]; row.own && row.layer != layerHTTPS {
				r := &rowRun{row: row, m: three}
				runs[i][1] = r
				run(r)
			}
		}
	})
	wg.Wait()

	for k, cfg := range []string{"one member", "three members"} {
		for i := range faultMatrix {
			r := runs[i][k]
			for _, c := range r.cells {
				t.Run(cfg+"/"+c.name(), func(t *testing.T) {
					for _, e := range c.errs {
						t.Errorf("want %s: %s", c.want, e)
					}
				})
			}
		}
	}
	t.Logf("fault matrix, %v:\n%s", time.Since(start).Round(time.Second), matrixTable(runs))
}

// matrixTable prints the matrix in Markdown: each cell is the expected
// outcome, "one / three" members, marked ✗ where it failed.
func matrixTable(runs [][2]*rowRun) string {
	var b strings.Builder
	b.WriteString("| Fault (1 member / 3 members) |")
	for _, n := range opNames {
		b.WriteString(" " + n + " |")
	}
	b.WriteString("\n|---|")
	for range opNames {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for i, row := range faultMatrix {
		b.WriteString("| " + row.fault + " |")
		for op := range nOps {
			var parts []string
			for k := range 2 {
				r := runs[i][k]
				var want outcome
				if k == 0 {
					want = row.one[op]
				} else {
					want = row.three[op]
				}
				s := "—"
				if want != na {
					s = string(want)
				}
				if r != nil {
					for _, c := range r.cells {
						if c.op == op && c.failed() {
							s += " ✗"
						}
					}
				}
				parts = append(parts, s)
			}
			b.WriteString(" " + strings.Join(parts, " / ") + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
