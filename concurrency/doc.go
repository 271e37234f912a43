// Package concurrency offers locks and leader elections on etcd, built on an
// [etcdgw.Client]: [Session], [Mutex] and [Election], with the shapes of
// clientv3/concurrency (go.etcd.io/etcd/client/v3/concurrency) and without
// its gRPC. Everything here is done client-side with the root package's
// public API: transactions, ranges, watches and lease renewals over etcd's
// HTTP gateway. The gateway's own /v3/lock and /v3/election services are not
// used: they wait on one blocking request (a proxy's idle timeout loses the
// place in the queue) and, without a lease, hand out one that nobody renews.
//
// # Keys, and other clients
//
// A lock or election named pfx is the set of keys pfx/<lease ID in hex>, one
// per session, attached to the session's lease; the key with the lowest
// create revision holds the lock or leads. This is clientv3's layout, so an
// etcdgw Mutex, a clientv3 Mutex and `etcdctl lock` on the same name exclude
// each other, and Elections interoperate with clientv3 and `etcdctl elect`.
// The keys live under the client's key prefix like any other key. Values are
// raw strings, written as is whatever the client's serializer
// ([etcdgw.RawValue]).
//
// # Sessions
//
// A [Session] is a lease kept alive in the background (60 s by default). It
// ends, [Session.Done] closes and [Session.Ctx] is cancelled with a cause
// (context.Cause), when it is closed or orphaned, when its lease is gone,
// and at the latest when the lease may have expired by the client's own
// clock: the send time of the last confirmed renewal plus the TTL. A session
// cut off from etcd therefore ends before etcd can give its locks away.
//
// # Locks and fencing
//
// [Mutex.Lock] waits in create-revision order, each waiter watching only the
// key just before its own; the wait survives reconnects and compactions and
// is bounded by its context alone. It returns at once with
// [ErrSessionExpired] when the session ends and with [ErrLockLost] when its
// key is deleted meanwhile. A holder has a fencing token, [Mutex.Token]: the
// lock key's create revision, which grows with every new holder.
// [Mutex.Done] closes when the held lock is released or lost.
//
// What a lock promises: while a holder's session lives and its key exists,
// no other session holds the lock; a holder's session ends before etcd can
// give the lock away, as long as the client's clock and etcd's run at the
// same rate; and a later holder always has a higher token. What it does not promise: that a holder knows at once when it
// loses the lock. A holder that pauses (a long GC, a stopped VM, a slow
// network) after checking Done may act after its lease expired and another
// holder took over. So never rely on holding the lock alone to protect a
// write; fence the write instead. For state kept in etcd, guard each write
// with [Mutex.IsOwner] in a transaction, which etcd applies only while the
// lock is held:
//
//	resp, err := c.Txn(ctx).If(m.IsOwner()).Then(etcdgw.OpPut("config", v)).Commit()
//	if err == nil && !resp.Succeeded {
//		// the lock was lost: stop, and Lock again if need be
//	}
//
// For any other store, send [Mutex.Token] with each write and have the store
// refuse a token lower than the highest it has accepted. The example below
// does both.
//
// Two Mutexes of one session on one name share one key and do not exclude
// each other, as in clientv3: use one session per holder.
//
// # Elections
//
// [Election.Campaign] waits to lead in the same order; [Election.Proclaim]
// changes the leader's value; [Election.Resign] steps down and keeps its
// state when it fails, so that it can be retried; [Election.Observe] reports
// every leader change, including that nobody leads (a response with no Kvs).
// [Election.Rev] is a leader's fencing token.
//
// # Fixed from clientv3/concurrency
//
// A waiter whose session ends or whose key is deleted returns at once
// (clientv3 blocks, etcd #19597); a compaction during a wait reads the queue
// again; a Campaign that fails for any reason removes its key (etcd #21128);
// a Resign that fails keeps the leadership, so a retry resigns (etcd
// #22123); Observe reports that nobody leads; and a session ends by its own
// clock, with a token to detect two holders after a lease lapse (etcd
// #10811, #9921).
//
// # No STM
//
// clientv3's software transactional memory (concurrency.STM) is not offered.
// Use a transaction that compares what was read instead, and retry when it
// fails:
//
//	for {
//		r, err := c.Get(ctx, "counter")
//		if err != nil {
//			return err
//		}
//		var n, rev int64
//		if len(r.Kvs) > 0 {
//			rev = r.Kvs[0].ModRevision
//			if err := c.Decode(r.Kvs[0].Value, &n); err != nil {
//				return err
//			}
//		}
//		t, err := c.Txn(ctx).
//			If(etcdgw.Compare(etcdgw.ModRevision("counter"), "=", rev)).
//			Then(etcdgw.OpPut("counter", n+1)).
//			Commit()
//		if err != nil {
//			return err
//		}
//		if t.Succeeded {
//			return nil
//		}
//	}
package concurrency
