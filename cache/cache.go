package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

// DefaultPageSize is the number of keys a list reads per request.
const DefaultPageSize = 1000

// Option configures a Cache.
type Option func(*options)

type options struct {
	pageSize int
	progress time.Duration
}

// WithPageSize sets how many keys each request of a list (and of a relist)
// reads; n <= 0 keeps DefaultPageSize.
func WithPageSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.pageSize = n
		}
	}
}

// WithProgressInterval makes an idle mirror ask etcd for a progress
// notification every d over the client's duplex watch streams (HTTP/2), so
// that its Revision follows the cluster and a reconnect after a compaction
// elsewhere does not force a relist. 0, the default, relies on etcd's own
// progress ticker (--watch-progress-notify-interval, 10 minutes by default).
// It asks only members of etcd 3.4.25, 3.5.8 or later (the version of the
// member that answers Client.Version): before, a progress answer can overtake
// events (etcd #15220). Over plain HTTP/1.1 it does nothing.
func WithProgressInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.progress = d
		}
	}
}

// EventType is the kind of change an Event describes.
type EventType int

// The kinds of Event.
const (
	Added EventType = iota + 1
	Updated
	Deleted
)

// String returns "added", "updated" or "deleted".
func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Item is one key of the mirror. Items are shared: do not modify them.
type Item[T any] struct {
	Key   string // as the client returns keys (its key prefix stripped)
	Value T
	KV    *mvccpb.KeyValue
	Err   error // the value did not decode into T; the item is kept, never dropped
}

// Event is the change of one key.
type Event[T any] struct {
	Type     EventType
	Key      string
	Old, New *Item[T] // Old nil for Added, New nil for Deleted
}

// Batch is what a handler gets at a time.
type Batch[T any] struct {
	// Revision is the mirror's Revision() once this batch is applied; every
	// event in it is newer than the previous batch's Revision and no newer
	// than this one.
	Revision int64
	// Events are one etcd revision or more, never a split one; after a
	// relist, or for a handler that lagged, the net delta per key: a key
	// deleted and created again in between is Deleted then Added.
	Events []Event[T]
	// Relist reports a batch computed by listing again (after compaction).
	Relist bool
}

// Stats describes the mirror for operators.
type Stats struct {
	Revision int64
	Keys     int
	// Relists is how many times the prefix was listed again after the watch's
	// resume point was compacted.
	Relists int
	// PendingBatches is the number of batches waiting for their handlers: at
	// most one per handler, however far it lags.
	PendingBatches int
}

// errClosed is returned by calls on a closed Cache.
var errClosed = errors.New("etcdgw: cache is closed")

// Cache is a consistent, typed, in-memory mirror of one prefix. It is safe
// for concurrent use.
type Cache[T any] struct {
	c      *etcdgw.Client
	prefix string
	opts   options

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	life   sync.Mutex // orders Start, AddHandler and Close
	state  int        // stateNew, stateStarted, stateClosed (guarded by life)

	mu       sync.RWMutex
	items    map[string]*Item[T]
	rev      int64
	changed  chan struct{} // closed and replaced when rev moves
	relists  int
	handlers []*handler[T]

	restored chan struct{} // capacity 1: Sync found the store restored below the mirror

	progressOnce  sync.Mutex // guards the two below
	progressKnown bool       // the server's version was read
	progressOK    bool       // it answers progress requests safely (progressSafe)
}

const (
	stateNew = iota
	stateStarted
	stateClosed
)

// New returns the mirror of the keys that start with prefix (as the client
// names keys: under its key prefix). It performs no I/O: Start lists the
// prefix. Values are decoded into T once, when they change, with the client's
// serializer (Client.Decode).
func New[T any](c *etcdgw.Client, prefix string, opts ...Option) (*Cache[T], error) {
	if c == nil {
		return nil, errors.New("etcdgw: cache.New: nil client")
	}
	o := options{pageSize: DefaultPageSize}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("etcdgw: cache.New: nil option")
		}
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache[T]{
		c: c, prefix: prefix, opts: o,
		ctx: ctx, cancel: cancel,
		items:    map[string]*Item[T]{},
		changed:  make(chan struct{}),
		restored: make(chan struct{}, 1),
	}, nil
}

// Start lists the prefix in pages at one revision R, applies it (handlers
// added before get it as one batch of Added), and returns once the mirror
// holds the prefix at R. ctx bounds this first sync only: the mirror then
// watches from R+1 in the background until Close. A Start that fails may be
// called again.
func (c *Cache[T]) Start(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	switch c.state {
	case stateStarted:
		return errors.New("etcdgw: cache: already started")
	case stateClosed:
		return errClosed
	}
	kvs, rev, err := c.list(ctx, 0, false)
	if err != nil {
		return fmt.Errorf("etcdgw: cache: listing %q: %w", c.prefix, err)
	}
	c.mu.Lock()
	events := make([]Event[T], 0, len(kvs))
	for _, kv := range kvs {
		it := c.item(kv)
		c.items[it.Key] = it
		events = append(events, Event[T]{Type: Added, Key: it.Key, New: it})
	}
	c.setRev(rev)
	if len(events) > 0 {
		c.push(Batch[T]{Revision: rev, Events: events})
	}
	c.mu.Unlock()
	c.state = stateStarted
	for _, h := range c.handlers {
		c.runHandler(h)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watch()
	}()
	if c.opts.progress > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.requestProgress()
		}()
	}
	return nil
}

// Close stops the mirror and waits for its goroutines: no handler is called
// after it returns. A handler must not call Close. Close does not close the
// client.
func (c *Cache[T]) Close() error {
	c.life.Lock()
	c.state = stateClosed
	c.cancel()
	c.life.Unlock()
	c.wg.Wait()
	return nil
}

// AddHandler adds h, called in order, one batch at a time, on a goroutine of
// its own. Its first batch is the content it has not seen, all Added (the
// initial list for one added before Start); none while the mirror is empty.
// Then one batch per watch response while h keeps up; while it lags, the
// responses it has not taken merge into one batch with the net delta per key
// (Old is what h was last given; created then deleted gives nothing; deleted
// then created gives Deleted then Added), so what waits for h is bounded by
// the number of keys, never by the number of changes.
func (c *Cache[T]) AddHandler(h func(Batch[T])) {
	if h == nil {
		return
	}
	c.life.Lock()
	defer c.life.Unlock()
	if c.state == stateClosed {
		return
	}
	hd := &handler[T]{f: h, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.handlers = append(c.handlers, hd)
	if c.state == stateStarted && len(c.items) > 0 {
		events := make([]Event[T], 0, len(c.items))
		for _, it := range c.sorted() {
			events = append(events, Event[T]{Type: Added, Key: it.Key, New: it})
		}
		hd.push(Batch[T]{Revision: c.rev, Events: events})
	}
	c.mu.Unlock()
	if c.state == stateStarted {
		c.runHandler(hd)
	}
}

// Get returns the item of key, as the client names keys (e.g. "/routes/a").
func (c *Cache[T]) Get(key string) (Item[T], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	it, ok := c.items[key]
	if !ok {
		return Item[T]{}, false
	}
	return *it, true
}

// List returns every item, sorted by key, all at one revision.
func (c *Cache[T]) List() []Item[T] {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Item[T], 0, len(c.items))
	for _, it := range c.sorted() {
		out = append(out, *it)
	}
	return out
}

// sorted returns the items sorted by key. The caller holds c.mu.
func (c *Cache[T]) sorted() []*Item[T] {
	out := make([]*Item[T], 0, len(c.items))
	for _, it := range c.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Len is the number of keys in the mirror.
func (c *Cache[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}

// Revision is the revision up to which every change of the prefix is
// applied. It never decreases: responses from a member that is behind are
// ignored, and events at or below it are dropped. The one exception is a
// store restored from a snapshot to a lower revision, which Sync detects: the
// mirror lists again and the Relist batch carries the lower revision.
func (c *Cache[T]) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Stats describes the mirror.
func (c *Cache[T]) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Stats{Revision: c.rev, Keys: len(c.items), Relists: c.relists}
	for _, h := range c.handlers {
		if h.pending() {
			s.PendingBatches++
		}
	}
	return s
}

// WaitForRevision waits until Revision() >= rev, for example the revision of
// the caller's own write, to read it from the mirror. On an idle prefix the
// mirror learns of revisions beyond its last change only from progress
// notifications: use Sync to wait for a revision outside the prefix.
func (c *Cache[T]) WaitForRevision(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, changed := c.rev, c.changed
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("etcdgw: cache: waiting for revision %d (at %d): %w", rev, cur, ctx.Err())
		case <-c.ctx.Done():
			return errClosed
		}
	}
}

// setRev moves the revision to rev and wakes the waiters. The caller holds
// c.mu.
func (c *Cache[T]) setRev(rev int64) {
	if rev == c.rev {
		return
	}
	c.rev = rev
	close(c.changed)
	c.changed = make(chan struct{})
}

// item decodes kv into an item.
func (c *Cache[T]) item(kv *mvccpb.KeyValue) *Item[T] {
	it := &Item[T]{Key: string(kv.Key), KV: kv}
	if err := c.c.Decode(kv.Value, &it.Value); err != nil {
		var zero T
		it.Value, it.Err = zero, fmt.Errorf("etcdgw: cache: the value of %q does not decode: %w", it.Key, err)
	}
	return it
}

// keyRange returns the range of the prefix in the form Get takes:
// start key and WithRange's end.
func (c *Cache[T]) keyRange() (start, end string) {
	b := []byte(c.prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return c.prefix, string(b[:i+1])
		}
	}
	return c.prefix, "\x00" // no end within the client's key prefix
}

// list reads the prefix in pages at one revision: rev, or now when rev is 0.
// With keysOnly the values are left out. A compaction between pages starts a
// list at a new revision over, unless rev was given.
func (c *Cache[T]) list(ctx context.Context, rev int64, keysOnly bool) ([]*mvccpb.KeyValue, int64, error) {
	for attempt := 0; ; attempt++ {
		kvs, r, err := c.listAt(ctx, rev, keysOnly)
		if err == nil || rev != 0 || !errors.Is(err, etcdgw.ErrCompacted) || attempt >= 3 {
			return kvs, r, err
		}
	}
}

func (c *Cache[T]) listAt(ctx context.Context, rev int64, keysOnly bool) ([]*mvccpb.KeyValue, int64, error) {
	start, end := c.keyRange()
	var kvs []*mvccpb.KeyValue
	for {
		opts := []etcdgw.OpOption{etcdgw.WithRange(end), etcdgw.WithLimit(int64(c.opts.pageSize))}
		if rev != 0 {
			opts = append(opts, etcdgw.WithRev(rev))
		}
		if keysOnly {
			opts = append(opts, etcdgw.WithKeysOnly())
		}
		resp, err := c.c.Get(ctx, start, opts...)
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs = append(kvs, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return kvs, rev, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Backoff between attempts of the background watch and relist.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 10 * time.Second
)

// sleep waits d, or less if the cache closes; false if it closed.
func (c *Cache[T]) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// backoff is the wait before attempt n (from 0), with jitter.
func backoff(n int) time.Duration {
	d := retryMin << min(n, 10)
	d = min(d, retryMax)
	return d/2 + rand.N(d/2+1)
}

// watch keeps the mirror up to date until Close: it watches from the
// revision after the mirror's, applies each response, and lists again when
// that revision was compacted.
func (c *Cache[T]) watch() {
	fails := 0
	for c.ctx.Err() == nil {
		before := c.Revision()
		err := c.watchOnce()
		if c.Revision() != before {
			fails = 0 // it ran: the next failure starts the backoff afresh
		}
		if c.ctx.Err() != nil {
			return
		}
		if errors.Is(err, etcdgw.ErrClosed) {
			return // the client is closed: nothing more will come
		}
		if errors.Is(err, etcdgw.ErrCompacted) || errors.Is(err, errRestored) {
			for c.ctx.Err() == nil {
				if err = c.relist(c.ctx); err == nil {
					// A restore that Sync reported again meanwhile is
					// the one this relist saw.
					select {
					case <-c.restored:
					default:
					}
					break
				}
				if errors.Is(err, etcdgw.ErrClosed) {
					return
				}
				fails++
				c.sleep(backoff(fails))
			}
			fails = 0
			continue
		}
		fails++
		c.sleep(backoff(fails))
	}
}

// watchOnce runs one watch from the mirror's revision + 1 until it ends, and
// returns why.
func (c *Cache[T]) watchOnce() error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	ch := c.c.WatchDir(ctx, c.prefix, etcdgw.WithRev(c.Revision()+1), etcdgw.WithProgressNotify(), etcdgw.WithFragment())
	for {
		select {
		case resp, ok := <-ch:
			if !ok {
				return c.ctx.Err()
			}
			if err := resp.Err(); err != nil {
				return err
			}
			c.apply(&resp)
		case <-c.restored:
			return errRestored
		}
	}
}

// errRestored ends the watch when the store was restored to a revision below
// the mirror's: the mirror lists again.
var errRestored = errors.New("etcdgw: cache: store restored below the mirror's revision")

// apply applies one watch response as one batch.
func (c *Cache[T]) apply(resp *etcdgw.WatchResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp.Created || resp.Canceled {
		return
	}
	if len(resp.Events) == 0 {
		// A progress notification: everything up to its revision was sent.
		// One from a member that is behind is ignored.
		if resp.Header.Revision > c.rev {
			c.setRev(resp.Header.Revision)
		}
		return
	}
	events := make([]Event[T], 0, len(resp.Events))
	rev, newRev := c.rev, c.rev
	for _, ev := range resp.Events {
		if ev.Kv == nil || ev.Kv.ModRevision <= rev {
			continue // seen already (a member behind, or a resume)
		}
		key := string(ev.Kv.Key)
		old := c.items[key]
		switch ev.Type {
		case mvccpb.PUT:
			it := c.item(ev.Kv)
			c.items[key] = it
			if old == nil {
				events = append(events, Event[T]{Type: Added, Key: key, New: it})
			} else {
				events = append(events, Event[T]{Type: Updated, Key: key, Old: old, New: it})
			}
		case mvccpb.DELETE:
			if old != nil {
				delete(c.items, key)
				events = append(events, Event[T]{Type: Deleted, Key: key, Old: old})
			}
		}
		newRev = max(newRev, ev.Kv.ModRevision)
	}
	c.setRev(newRev)
	if len(events) > 0 {
		c.push(Batch[T]{Revision: newRev, Events: events})
	}
}

// push hands b to every handler. The caller holds c.mu.
func (c *Cache[T]) push(b Batch[T]) {
	for _, h := range c.handlers {
		h.push(b)
	}
}

// runHandler starts h's goroutine. The caller holds c.life.
func (c *Cache[T]) runHandler(h *handler[T]) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		h.run(c.ctx)
	}()
}

// requestProgress asks for progress notifications every WithProgressInterval
// until Close, or until the client says it cannot.
func (c *Cache[T]) requestProgress() {
	t := time.NewTicker(c.opts.progress)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
		if !c.canRequestProgress(c.ctx) {
			continue
		}
		if err := c.c.RequestProgress(c.ctx); errors.Is(err, errors.ErrUnsupported) || errors.Is(err, etcdgw.ErrClosed) {
			return
		}
	}
}
