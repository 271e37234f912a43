package cache

import (
	"context"
	"sync"
)

// handler is one AddHandler call: its function, and the batch it has not
// taken yet.
type handler[T any] struct {
	f    func(Batch[T])
	mu   sync.Mutex
	next *Batch[T]     // waiting for f; a new batch merges into it
	wake chan struct{} // capacity 1: there is a batch to take
}

// push queues b for the handler without waiting for it.
func (h *handler[T]) push(b Batch[T]) {
	h.mu.Lock()
	if h.next == nil {
		h.next = &b
	} else {
		m := merge(*h.next, b)
		h.next = &m
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// pending reports a batch waiting for the handler.
func (h *handler[T]) pending() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.next != nil
}

// run calls the handler with each batch until ctx ends; it makes no call once
// ctx has ended.
func (h *handler[T]) run(ctx context.Context) {
	for {
		select {
		case <-h.wake:
		case <-ctx.Done():
			return
		}
		h.mu.Lock()
		b := h.next
		h.next = nil
		h.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if b != nil && len(b.Events) > 0 {
			h.f(*b)
		}
	}
}

// merge joins two batches, a before b, into one with the net change per key,
// in the order keys first changed.
func merge[T any](a, b Batch[T]) Batch[T] {
	type change struct{ before, after *Item[T] }
	changes := map[string]*change{}
	var order []string
	for _, evs := range [][]Event[T]{a.Events, b.Events} {
		for _, e := range evs {
			ch := changes[e.Key]
			if ch == nil {
				ch = &change{before: e.Old}
				changes[e.Key] = ch
				order = append(order, e.Key)
			}
			ch.after = e.New
		}
	}
	events := make([]Event[T], 0, len(order))
	for _, k := range order {
		events = append(events, netChange(k, changes[k].before, changes[k].after)...)
	}
	return Batch[T]{Revision: max(a.Revision, b.Revision), Events: events, Relist: a.Relist || b.Relist}
}

// netChange is the change of key from before to after (nil: absent): nothing,
// Added, Updated, Deleted, or Deleted then Added when the key was created
// again in between (its create revision differs).
func netChange[T any](key string, before, after *Item[T]) []Event[T] {
	switch {
	case before == nil && after == nil:
		return nil
	case before == nil:
		return []Event[T]{{Type: Added, Key: key, New: after}}
	case after == nil:
		return []Event[T]{{Type: Deleted, Key: key, Old: before}}
	case before.KV.CreateRevision == after.KV.CreateRevision:
		if before.KV.ModRevision == after.KV.ModRevision {
			return nil
		}
		return []Event[T]{{Type: Updated, Key: key, Old: before, New: after}}
	}
	return []Event[T]{{Type: Deleted, Key: key, Old: before}, {Type: Added, Key: key, New: after}}
}
