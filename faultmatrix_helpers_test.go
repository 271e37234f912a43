package etcdgw_test

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

// The fault matrix's helpers: a cell's record of what went wrong, the
// watch and keepalive recorders, and the checks of an outcome.

// cellLog collects a cell's failures; its goroutines never call t.Fatal.
type cellLog struct {
	mu   sync.Mutex
	errs []string
	dead bool // setting up failed: later phases do not run
}

func (l *cellLog) errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *cellLog) fatalf(format string, args ...any) {
	l.errorf(format, args...)
	l.mu.Lock()
	l.dead = true
	l.mu.Unlock()
}

func (l *cellLog) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs) > 0
}

func (l *cellLog) isDead() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dead
}

// guard runs f, turning a panic into a failure of the cell.
func (l *cellLog) guard(phase string, f func()) {
	if l.isDead() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			l.fatalf("%s: panic: %v\n%s", phase, r, debug.Stack())
		}
	}()
	f()
}

// eachConcurrently runs f for each item at once and waits for them all.
func eachConcurrently[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() { f(it) })
	}
	wg.Wait()
}

// checkOutcome says what is wrong with err for the outcome want of a unary
// call, or "" when it is right; ctxErr is the call's context's error if its
// deadline passed.
func checkOutcome(want outcome, err, ctxErr error) string {
	withCtx := func() string {
		if ctxErr != nil && !errors.Is(err, ctxErr) {
			return fmt.Sprintf("the deadline ended it but the error does not match %v", ctxErr)
		}
		return ""
	}
	switch want {
	case ok:
		if err != nil {
			return fmt.Sprintf("got error %v, want success", err)
		}
	case unavailable:
		switch {
		case err == nil:
			return "got success, want an error matching ErrUnavailable"
		case !errors.Is(err, etcdgw.ErrUnavailable):
			return fmt.Sprintf("got %v, want an error matching ErrUnavailable", err)
		case errors.Is(err, etcdgw.ErrOutcomeUnknown):
			return fmt.Sprintf("got %v, which matches ErrOutcomeUnknown: the request was never sent", err)
		}
		return withCtx()
	case unknown:
		switch {
		case err == nil:
			return "got success, want an error matching ErrOutcomeUnknown"
		case !errors.Is(err, etcdgw.ErrOutcomeUnknown):
			return fmt.Sprintf("got %v, want an error matching ErrOutcomeUnknown", err)
		}
		return withCtx()
	default:
		return fmt.Sprintf("outcome %q is not one of a unary call", want)
	}
	return ""
}

// watchEvent is what the matrix compares of an event.
type watchEvent struct {
	typ   mvccpb.Event_EventType
	key   string
	value string
	rev   int64
}

func (e watchEvent) String() string { return fmt.Sprintf("%v %s=%s@%d", e.typ, e.key, e.value, e.rev) }

// watchRecorder reads a watch channel in the background.
type watchRecorder struct {
	mu       sync.Mutex
	events   []watchEvent
	errs     []error // Err() of the responses that carried one
	compactR int64   // CompactRevision of a response, if any
	closed   bool
	changed  chan struct{} // closed and replaced at every change
	done     chan struct{} // closed when the goroutine ends
}

func recordWatch(ch etcdgw.WatchChan) *watchRecorder {
	w := &watchRecorder{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for resp := range ch {
			w.mu.Lock()
			for _, ev := range resp.Events {
				w.events = append(w.events, watchEvent{ev.Type, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.ModRevision})
			}
			if err := resp.Err(); err != nil {
				w.errs = append(w.errs, err)
			}
			if resp.CompactRevision != 0 {
				w.compactR = resp.CompactRevision
			}
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.closed = true
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}()
	return w
}

// waitUntil waits up to d for cond, checked under the recorder's lock at
// each change, and reports whether it held.
func (w *watchRecorder) waitUntil(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		w.mu.Lock()
		held, changed := cond(), w.changed
		w.mu.Unlock()
		if held {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// upTo waits up to d for an event at rev or later and returns the events.
func (w *watchRecorder) upTo(rev int64, d time.Duration) ([]watchEvent, bool) {
	okay := w.waitUntil(d, func() bool { return len(w.events) > 0 && w.events[len(w.events)-1].rev >= rev || w.closed })
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]watchEvent(nil), w.events...), okay && len(w.events) > 0 && w.events[len(w.events)-1].rev >= rev
}

func (w *watchRecorder) state() (errs []error, compactRev int64, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...), w.compactR, w.closed
}

func eventsString(evs []watchEvent) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// keepAliveRecorder drains a KeepAlive channel in the background.
type keepAliveRecorder struct {
	mu     sync.Mutex
	last   time.Time // when the last renewal arrived
	closed time.Time // when the channel closed; zero while open
	done   chan struct{}
}

func recordKeepAlive(ch <-chan *etcdgw.LeaseKeepAliveResponse) *keepAliveRecorder {
	k := &keepAliveRecorder{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for range ch {
			k.mu.Lock()
			k.last = time.Now()
			k.mu.Unlock()
		}
		k.mu.Lock()
		k.closed = time.Now()
		k.mu.Unlock()
	}()
	return k
}

// renewedAfter polls up to d for a renewal that arrived after t, and
// reports whether one did and when the channel closed, if it did.
func (k *keepAliveRecorder) renewedAfter(t time.Time, d time.Duration) (bool, time.Time) {
	deadline := time.Now().Add(d)
	for {
		k.mu.Lock()
		last, closed := k.last, k.closed
		k.mu.Unlock()
		if last.After(t) || !closed.IsZero() || time.Now().After(deadline) {
			return last.After(t), closed
		}
		time.Sleep(20 * time.Millisecond) // polling the drainer
	}
}

// pollUntil calls f until it returns true or d has passed, and reports
// whether it did.
func pollUntil(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling a proxy's counters
	}
}
