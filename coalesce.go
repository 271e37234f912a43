package etcdgw

import (
	"context"
	"errors"
	"sync"

	"github.com/etcdgw/etcdgw/internal/wire"
)

// Read coalescing (WithReadCoalescing). A gateway request costs etcd far more
// than a gRPC call, so past a few concurrent reads the way to more reads a
// second is fewer requests: while coalesceSlots plain reads are in flight, the
// next ones queue, and as a slot frees up, the first of them in line sends
// every read queued behind it too, as one Txn of range operations, and hands
// each caller its own answer.
//
// This stays linearizable: each coalesced read was invoked before the Txn was
// sent, the Txn reads one revision of the store at a point between its
// sending and its answer, and each read returns after that answer. A read
// that would not mean the same inside a Txn (at a revision, serializable,
// sorted, filtered by revisions, requiring a leader) is never coalesced.

// coalesceSlots is how many plain reads may be in flight to each endpoint
// before the next ones queue to be coalesced. Measured with BenchmarkGet on 2
// cores and one member: 2 slots did 64 callers' reads in 75µs each, 4 in
// 96µs, 8 in 106µs; 16 callers' in 164µs, 224µs and 236µs.
const coalesceSlots = 2

// coalesceMaxOps is the most reads one Txn carries: etcd's default
// --max-txn-ops. A server configured lower answers ErrTooManyOps, and the
// client then halves it.
const coalesceMaxOps = 128

// coalescer queues plain reads while the slots are taken.
type coalescer struct {
	mu       sync.Mutex
	slots    int         // requests that may be in flight at once
	inflight int         // requests in flight: single reads and coalesced Txns
	queue    []*coalRead // reads waiting for a slot, in order
	maxOps   int
}

// coalRead is one queued read. The first in line is woken with lead to send
// a batch; the others are woken with their answer, or with solo to read on
// their own.
type coalRead struct {
	req  *wire.RangeRequest
	wake chan struct{} // closed once one of the fields below is set
	lead bool
	solo bool
	res  *GetResponse
	err  error
}

func newCoalescer(endpoints int) *coalescer {
	return &coalescer{slots: coalesceSlots * endpoints, maxOps: coalesceMaxOps}
}

// coalescable reports whether a range request reads the same alone and inside
// a Txn of other reads.
func coalescable(req *wire.RangeRequest, leader bool) bool {
	return !leader && req.Revision == 0 && !req.Serializable && req.SortOrder == wire.SortNone &&
		req.MinModRevision == 0 && req.MaxModRevision == 0 && req.MinCreateRevision == 0 && req.MaxCreateRevision == 0
}

// coalescedGet reads req, alone while a slot is free, or coalesced with the reads
// queued with it.
func (c *Client) coalescedGet(ctx context.Context, req *wire.RangeRequest) (*GetResponse, error) {
	q := c.coal
	q.mu.Lock()
	if q.inflight < q.slots {
		q.inflight++
		q.mu.Unlock()
		defer c.releaseSlot()
		return c.singleGet(ctx, req)
	}
	r := &coalRead{req: req, wake: make(chan struct{})}
	q.queue = append(q.queue, r)
	q.mu.Unlock()

	select {
	case <-r.wake:
	case <-ctx.Done():
		if !q.leave(r) {
			// Woken meanwhile: a leader must still lead, so that the
			// reads behind it are not stranded; the others just go.
			<-r.wake
			if r.lead {
				c.lead(context.WithoutCancel(ctx), r)
			}
		}
		return nil, c.ctxEnded(ctx, &rpc{path: wire.PathRange}, nil)
	}
	switch {
	case r.lead:
		c.lead(ctx, r)
	case r.solo:
		return c.singleGet(ctx, req)
	}
	return r.res, r.err
}

// leave takes r out of the queue; false if it was woken already.
func (q *coalescer) leave(r *coalRead) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.queue {
		if x == r {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			return true
		}
	}
	return false
}

// releaseSlot ends a request in flight: the slot goes to the first read in
// line, which sends the queue as one Txn.
func (c *Client) releaseSlot() {
	q := c.coal
	q.mu.Lock()
	if len(q.queue) == 0 {
		q.inflight--
		q.mu.Unlock()
		return
	}
	r := q.queue[0]
	q.queue = q.queue[1:]
	r.lead = true
	q.mu.Unlock()
	close(r.wake) // the slot passes to r
}

// lead sends r and the reads queued behind it, up to the Txn limit, as one
// Txn, and answers each. r holds the slot and releases it at the end.
func (c *Client) lead(ctx context.Context, r *coalRead) {
	defer c.releaseSlot()
	q := c.coal
	q.mu.Lock()
	n := min(len(q.queue), q.maxOps-1)
	batch := append([]*coalRead{r}, q.queue[:n]...)
	q.queue = q.queue[n:]
	q.mu.Unlock()
	if len(batch) == 1 {
		r.res, r.err = c.singleGet(ctx, r.req)
		return
	}
	txn := &wire.TxnRequest{Success: make([]wire.RequestOp, len(batch))}
	for i, b := range batch {
		txn.Success[i].Range = b.req
	}
	res, err := c.commit(ctx, txn, true, false)
	if err == nil && !answersEach(res, len(batch)) {
		err = malformed("coalesced reads", errors.New("the Txn did not answer each read"))
	}
	for i, b := range batch {
		switch {
		case err != nil:
			// A Txn that failed, for whatever reason, is no answer to
			// any one read: each reads on its own, and gets its own.
			if errors.Is(err, ErrTooManyOps) {
				q.mu.Lock()
				q.maxOps = max(q.maxOps/2, 2)
				q.mu.Unlock()
			}
			if i == 0 {
				r.res, r.err = c.singleGet(ctx, r.req)
				continue
			}
			b.solo = true
			close(b.wake)
		default:
			b.res = res.Responses[i].Get
			b.res.Header = res.Header
			if i > 0 {
				close(b.wake)
			}
		}
	}
}

// answersEach reports whether res holds one range answer for each of n reads.
func answersEach(res *TxnResponse, n int) bool {
	if len(res.Responses) != n {
		return false
	}
	for _, r := range res.Responses {
		if r.Get == nil {
			return false
		}
	}
	return true
}

// singleGet is one Range request.
func (c *Client) singleGet(ctx context.Context, req *wire.RangeRequest) (*GetResponse, error) {
	var a wire.Arena
	if req.RangeEnd == nil {
		a.KVHint = 1
	}
	var out wire.RangeResponse
	if err := c.rangeCall(ctx, req, false, &a, &out); err != nil {
		return nil, err
	}
	return c.getResponse(&out), nil
}
