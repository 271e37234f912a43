package cache

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

// maxSingleFetches is how many changed keys a relist reads one by one; with
// more it reads the whole prefix again, with values, at the same revision.
const maxSingleFetches = 64

// relist lists the prefix again after the watch's resume point was
// compacted: keys only first, at a revision R2; values only for the keys
// whose create or mod revision differs from the mirror's, at R2. It applies
// the exact delta as one batch with Relist set; the watch then goes on from
// R2+1.
func (c *Cache[T]) relist(ctx context.Context) error {
	keys, rev, err := c.list(ctx, 0, true)
	if err != nil {
		return err
	}
	c.mu.RLock()
	var changed []string
	for _, kv := range keys {
		old := c.items[string(kv.Key)]
		if old == nil || old.KV.ModRevision != kv.ModRevision || old.KV.CreateRevision != kv.CreateRevision {
			changed = append(changed, string(kv.Key))
		}
	}
	c.mu.RUnlock()

	fetched := make(map[string]*mvccpb.KeyValue, len(changed))
	if len(changed) <= maxSingleFetches {
		for _, k := range changed {
			resp, err := c.c.Get(ctx, k, etcdgw.WithRev(rev))
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 {
				return fmt.Errorf("etcdgw: cache: relist: %q vanished at revision %d", k, rev)
			}
			fetched[k] = resp.Kvs[0]
		}
	} else {
		all, _, err := c.list(ctx, rev, false)
		if err != nil {
			return err
		}
		want := make(map[string]bool, len(changed))
		for _, k := range changed {
			want[k] = true
		}
		for _, kv := range all {
			if want[string(kv.Key)] {
				fetched[string(kv.Key)] = kv
			}
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(keys))
	var events []Event[T]
	for _, kv := range keys {
		k := string(kv.Key)
		listed[k] = true
		old := c.items[k]
		full := fetched[k]
		if full == nil {
			continue // unchanged
		}
		it := c.item(full)
		c.items[k] = it
		events = append(events, netChange(k, old, it)...)
	}
	for _, old := range c.sorted() {
		if !listed[old.Key] {
			delete(c.items, old.Key)
			events = append(events, Event[T]{Type: Deleted, Key: old.Key, Old: old})
		}
	}
	c.relists++
	c.rev = 0 // a relist sets the revision it read at, even a lower one
	c.setRev(rev)
	if len(events) > 0 {
		c.push(Batch[T]{Revision: rev, Events: events, Relist: true})
	}
	return nil
}
