package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcdgw/etcdgw"
)

// syncPoll is how long Sync waits for the watch before it asks again.
const syncPoll = 100 * time.Millisecond

// Sync waits until the mirror holds every change committed before the call,
// and returns that revision R: a linearizable count-only read of the prefix
// gives R (one small request); then Sync waits until Revision() >= R.
//
// On a busy prefix the watch gets there by itself. On an idle one it would
// wait for a progress notification: over a duplex stream (HTTP/2), with etcd
// 3.4.25, 3.5.8 or later (etcd #15220), Sync asks for one every 100 ms
// (Client.RequestProgress), and everywhere, every 100 ms,
// it also reads the prefix's keys (keys only, no values) at R and compares
// their create and mod revisions with the mirror: when they all match, the
// mirror holds the prefix at R and its revision moves to R. That read costs one
// request per page of WithPageSize keys; the changes it skips (a key created
// and deleted again before R, not yet delivered) are net nothing, as for a
// handler that lags.
//
// A count-only read that answers below Revision() means the store was
// restored from a snapshot: Sync then makes the mirror list again (one Relist
// batch, at the lower revision) and starts over.
func (c *Cache[T]) Sync(ctx context.Context) (int64, error) {
	c.life.Lock()
	state := c.state
	c.life.Unlock()
	switch state {
	case stateNew:
		return 0, errors.New("etcdgw: cache: Sync before Start")
	case stateClosed:
		return 0, errClosed
	}
	for {
		r, again, err := c.syncOnce(ctx)
		if !again {
			return r, err
		}
	}
}

// syncOnce is one attempt of Sync; again reports that the store was found
// restored below the mirror, which lists again before Sync tries anew.
func (c *Cache[T]) syncOnce(ctx context.Context) (rev int64, again bool, err error) {
	start, end := c.keyRange()
	resp, err := c.c.Get(ctx, start, etcdgw.WithRange(end), etcdgw.WithCountOnly())
	if err != nil {
		return 0, false, fmt.Errorf("etcdgw: cache: Sync: %w", err)
	}
	r := resp.Header.Revision
	c.mu.RLock()
	cur, changed := c.rev, c.changed
	c.mu.RUnlock()
	if r < cur {
		// A linearizable read below what the mirror holds: the store was
		// restored (a member behind never answers it). List again.
		select {
		case c.restored <- struct{}{}:
		default:
		}
		select {
		case <-changed:
			return 0, true, nil
		case <-ctx.Done():
			return 0, false, fmt.Errorf("etcdgw: cache: Sync: waiting for the relist of a restored store: %w", context.Cause(ctx))
		case <-c.ctx.Done():
			return 0, false, errClosed
		}
	}
	progress := c.canRequestProgress(ctx)
	for {
		if c.Revision() >= r {
			return r, false, nil
		}
		if progress {
			if err := c.c.RequestProgress(ctx); errors.Is(err, errors.ErrUnsupported) {
				progress = false
			}
		}
		wctx, cancel := context.WithTimeout(ctx, syncPoll)
		err := c.WaitForRevision(wctx, r)
		cancel()
		if err == nil {
			return r, false, nil
		}
		if ctx.Err() != nil || c.ctx.Err() != nil {
			return 0, false, fmt.Errorf("etcdgw: cache: Sync: waiting for revision %d: %w", r, context.Cause(ctx))
		}
		if ok, err := c.sameAt(ctx, r); err != nil {
			return 0, false, fmt.Errorf("etcdgw: cache: Sync: %w", err)
		} else if ok {
			return r, false, nil
		}
	}
}

// sameAt reads the prefix's keys at rev and, when the mirror holds exactly
// them at the same create and mod revisions, moves the mirror's revision to
// rev.
func (c *Cache[T]) sameAt(ctx context.Context, rev int64) (bool, error) {
	keys, _, err := c.list(ctx, rev, true)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rev >= rev {
		return true, nil
	}
	if len(keys) != len(c.items) {
		return false, nil
	}
	for _, kv := range keys {
		it := c.items[string(kv.Key)]
		if it == nil || it.KV.ModRevision != kv.ModRevision || it.KV.CreateRevision != kv.CreateRevision {
			return false, nil
		}
	}
	c.setRev(rev)
	return true, nil
}
