package concurrency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

var (
	// ErrLockLost is returned by Lock and Campaign when their key was deleted
	// while they waited and their session still lives: someone else deleted
	// it.
	ErrLockLost = errors.New("etcdgw: lock lost: key deleted")
)

// keyFor is the key of a lock or candidacy: pfx + "/" + the lease ID in
// lowercase hex, as clientv3/concurrency and etcdctl write it.
func keyFor(pfx string, lease etcdgw.LeaseID) string {
	return fmt.Sprintf("%s/%x", pfx, int64(lease))
}

// firstCreate reads the key with the lowest create revision under prefix:
// the holder of a lock, the leader of an election.
func firstCreate(prefix string) etcdgw.Op {
	return etcdgw.OpGet(prefix, etcdgw.WithPrefix(),
		etcdgw.WithSort(etcdgw.SortByCreateRevision, etcdgw.SortAscend), etcdgw.WithLimit(1))
}

// sessionEnded is the error of a wait that its session's end stopped: it
// matches ErrSessionExpired, and the session's cause.
type sessionEnded struct{ cause error }

func (e sessionEnded) Error() string        { return e.cause.Error() }
func (e sessionEnded) Unwrap() error        { return e.cause }
func (e sessionEnded) Is(target error) bool { return target == ErrSessionExpired }

// endErr returns the error of a wait that the session's end stopped, or nil
// if the session lives.
func (s *Session) endErr() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return sessionEnded{context.Cause(s.ctx)}
}

// leaseErr is err, made to match ErrSessionExpired too when it says that
// the session's lease is gone (the session may not have noticed yet).
func leaseErr(err error) error {
	if errors.Is(err, etcdgw.ErrLeaseNotFound) {
		return sessionEnded{err}
	}
	return err
}

// waitOutcome is what one event of a wait means.
type waitOutcome int

const (
	waitGoOn   waitOutcome = iota // nothing that matters: keep waiting
	waitReread                    // the key before ours went (or the watch was compacted): read again
	waitLost                      // our own key was deleted
)

// classifyWatch decides what a watch response means to a waiter: own tells
// whether the watch is on the waiter's own key or on the key before it. Any
// error other than compaction ends the wait with that error.
func classifyWatch(r etcdgw.WatchResponse, own bool) (waitOutcome, error) {
	if err := r.Err(); err != nil {
		if errors.Is(err, etcdgw.ErrCompacted) {
			return waitReread, nil
		}
		return waitGoOn, err
	}
	for _, ev := range r.Events {
		if ev.Type == mvccpb.DELETE {
			if own {
				return waitLost, nil
			}
			return waitReread, nil
		}
	}
	return waitGoOn, nil
}

// lost is the error of a waiter or holder whose key is gone:
// ErrSessionExpired when its session ended or its lease is gone (the
// session may not have noticed yet), ErrLockLost when someone deleted the key
// while the session lives.
func (s *Session) lost(ctx context.Context) error {
	if err := s.endErr(); err != nil {
		return err
	}
	if r, err := s.c.TimeToLive(ctx, s.id, false); err == nil && r.TTL < 0 {
		return fmt.Errorf("%w: lease %x gone", ErrSessionExpired, int64(s.id))
	}
	return ErrLockLost
}

// waitTurn waits until no key under prefix created before myRev remains,
// while myKey, created at myRev, does. Each round reads, at one revision,
// the newest key created before ours and our own key, then watches only
// those two from the revision after the read: a delete of the key before
// ours (or a compaction of either watch) starts a new round, a delete of
// ours ends the wait with ErrLockLost or ErrSessionExpired. The wait also
// ends when ctx or the session ends. It returns the revision of the read
// that found no key before ours.
func waitTurn(ctx context.Context, s *Session, prefix, myKey string, myRev int64) (int64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	c := s.c
	fails := 0
	for {
		r, err := c.Txn(wctx).Then(
			etcdgw.OpGet(prefix, etcdgw.WithPrefix(), etcdgw.WithMaxCreateRev(myRev-1),
				etcdgw.WithSort(etcdgw.SortByCreateRevision, etcdgw.SortDescend), etcdgw.WithLimit(1)),
			etcdgw.OpGet(myKey, etcdgw.WithKeysOnly()),
		).Commit()
		if err != nil {
			if retryable(err) && wctx.Err() == nil {
				// etcd is out of reach for now: the place in the queue
				// lasts as long as the session, which ends on its own
				// if this goes on for a TTL.
				fails++
				if pause(wctx, fails) {
					continue
				}
			}
			return 0, waitError(ctx, s, err)
		}
		fails = 0
		if mine := r.Responses[1].Get.Kvs; len(mine) == 0 || mine[0].CreateRevision != myRev {
			return 0, s.lost(context.WithoutCancel(ctx))
		}
		before := r.Responses[0].Get.Kvs
		if len(before) == 0 {
			return r.Header.Revision, nil
		}
		if err := waitRound(wctx, s, string(before[0].Key), myKey, r.Header.Revision+1); err != nil {
			if errors.Is(err, ErrLockLost) {
				return 0, s.lost(context.WithoutCancel(ctx))
			}
			return 0, waitError(ctx, s, err)
		}
	}
}

// waitRound watches the key before ours and our own from rev until the one
// before goes (nil: read again), ours goes (ErrLockLost), or the wait ends.
func waitRound(ctx context.Context, s *Session, beforeKey, myKey string, rev int64) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	before := s.c.Watch(rctx, beforeKey, etcdgw.WithRev(rev), etcdgw.WithFilterPut())
	own := s.c.Watch(rctx, myKey, etcdgw.WithRev(rev), etcdgw.WithFilterPut())
	for {
		var r etcdgw.WatchResponse
		var ok, isOwn bool
		select {
		case r, ok = <-before:
		case r, ok = <-own:
			isOwn = true
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return etcdgw.ErrClosed
		}
		switch out, err := classifyWatch(r, isOwn); {
		case err != nil:
			return err
		case out == waitReread:
			return nil
		case out == waitLost:
			return ErrLockLost
		}
	}
}

// waitError is the error of a wait that failed with err: the session's end
// first, then the caller's ctx (err already matches its error), then err.
func waitError(ctx context.Context, s *Session, err error) error {
	if e := s.endErr(); e != nil {
		return e
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// retryable reports whether a read failed only because etcd could not be
// reached for now.
func retryable(err error) bool {
	return errors.Is(err, etcdgw.ErrUnavailable) || errors.Is(err, etcdgw.ErrNoHealthyEndpoint)
}

// Pauses between reads of a waiter that cannot reach etcd.
const (
	retryMin = 100 * time.Millisecond
	retryMax = time.Second
)

// pause waits before the fails-th retry (backoff from retryMin to
// retryMax); false if ctx ended first.
func pause(ctx context.Context, fails int) bool {
	t := time.NewTimer(min(retryMin<<min(fails-1, 4), retryMax))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
