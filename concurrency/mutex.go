package concurrency

import (
	"context"
	"errors"
	"sync"

	"github.com/etcdgw/etcdgw"
)

// ErrLocked is returned by TryLock when another session holds the lock.
var ErrLocked = errors.New("etcdgw: locked by another session")

// closedChan is the Done channel of a lock not held.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Mutex is a lock on a name, shared with every etcd client that uses
// clientv3/concurrency's layout (etcdgw, clientv3, etcdctl lock): each
// session that wants it writes the key pfx/<lease ID in hex>, attached to its
// lease, and the key with the lowest create revision holds the lock.
//
// A Mutex is used by one goroutine at a time for Lock, TryLock and Unlock;
// Key, Token, IsOwner and Done may be called from any goroutine. Two Mutexes
// of one session on one name share one key, as in clientv3: they do not
// exclude each other.
type Mutex struct {
	s      *Session
	pfx    string // name + "/"
	key    string
	ops    sync.Mutex // serializes Lock, TryLock and Unlock
	mu     sync.Mutex // guards the fields below
	rev    int64      // create revision of key while held
	done   chan struct{}
	cancel context.CancelFunc // stops the holder's watch
	ended  chan struct{}      // closed when the holder's watch has returned
}

// NewMutex returns the lock named pfx of session s. Its key is pfx + "/" +
// the session's lease ID in hex, under the client's key prefix.
func NewMutex(s *Session, pfx string) *Mutex {
	return &Mutex{s: s, pfx: pfx + "/", key: keyFor(pfx, s.id), done: closedChan}
}

// Lock waits until the lock is held, in the order the sessions asked for it
// (their keys' create revisions), each waiter watching only the key just
// before its own: the wait survives reconnects and compactions and is
// bounded by ctx only. Locking a lock this Mutex already holds does
// nothing.
//
// Lock returns at once with an error matching ErrSessionExpired when the
// session ends while it waits, with ErrLockLost when its key is deleted
// while the session lives, and with ctx's error when ctx ends; in every case
// its key is deleted, so that it waits in the queue no more.
func (m *Mutex) Lock(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	if m.holding() {
		return nil
	}
	if err := m.s.endErr(); err != nil {
		return err
	}
	rev, owner, rrev, err := m.tryAcquire(ctx)
	if err != nil {
		return err
	}
	if owner != rev {
		if rrev, err = waitTurn(ctx, m.s, m.pfx, m.key, rev); err != nil {
			m.remove(ctx, rev)
			return err
		}
	}
	m.hold(rev, rrev)
	return nil
}

// TryLock takes the lock if nobody holds it, and otherwise returns ErrLocked
// at once (its key is deleted: it does not queue).
func (m *Mutex) TryLock(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	if m.holding() {
		return nil
	}
	if err := m.s.endErr(); err != nil {
		return err
	}
	rev, owner, rrev, err := m.tryAcquire(ctx)
	if err != nil {
		return err
	}
	if owner != rev {
		m.remove(ctx, rev)
		return ErrLocked
	}
	m.hold(rev, rrev)
	return nil
}

// tryAcquire writes the Mutex's key if it does not exist, and reads the
// holder's, in one transaction. It returns the create revision of our key,
// the holder's, and the revision of the answer.
func (m *Mutex) tryAcquire(ctx context.Context) (rev, owner, read int64, err error) {
	r, err := m.s.c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.CreateRevision(m.key), "=", 0)).
		Then(etcdgw.OpPut(m.key, etcdgw.RawValue(nil), etcdgw.WithLease(m.s.id)), firstCreate(m.pfx)).
		Else(etcdgw.OpGet(m.key), firstCreate(m.pfx)).
		Commit()
	if err != nil {
		if errors.Is(err, etcdgw.ErrOutcomeUnknown) {
			// The key may have been written: do not leave it in the queue.
			m.remove(ctx, 0)
		}
		return 0, 0, 0, leaseErr(err)
	}
	rev = r.Header.Revision
	if !r.Succeeded {
		kvs := r.Responses[0].Get.Kvs
		if len(kvs) == 0 {
			return 0, 0, 0, ErrLockLost // cannot happen: the compare saw it
		}
		rev = kvs[0].CreateRevision
	}
	owner = rev
	if kvs := r.Responses[1].Get.Kvs; len(kvs) > 0 {
		owner = kvs[0].CreateRevision
	}
	return rev, owner, r.Header.Revision, nil
}

// remove deletes our key if it is the one created at rev (any, for rev 0),
// best effort: it runs after ctx may have ended, bounded by the client's
// timeout instead.
func (m *Mutex) remove(ctx context.Context, rev int64) {
	ctx = context.WithoutCancel(ctx)
	if rev == 0 {
		_, _ = m.s.c.Delete(ctx, m.key)
		return
	}
	_, _ = m.s.c.Txn(ctx).If(etcdgw.Compare(etcdgw.CreateRevision(m.key), "=", rev)).
		Then(etcdgw.OpDelete(m.key)).Commit()
}

// holding reports whether the lock is held and not lost; a lost lock's
// state is cleared.
func (m *Mutex) holding() bool {
	m.mu.Lock()
	done, held := m.done, m.rev != 0
	m.mu.Unlock()
	if !held {
		return false
	}
	select {
	case <-done:
		m.release()
		return false
	default:
		return true
	}
}

// hold records the lock as held, with our key created at rev and seen at
// read, and starts watching the key and the session: Done closes when the
// key is deleted or the session ends.
func (m *Mutex) hold(rev, read int64) {
	ctx, cancel := context.WithCancel(m.s.ctx)
	done, ended := make(chan struct{}), make(chan struct{})
	m.mu.Lock()
	m.rev, m.done, m.cancel, m.ended = rev, done, cancel, ended
	m.mu.Unlock()
	go func() {
		defer close(ended)
		defer close(done)
		watchHeld(ctx, m.s.c, m.key, rev, read+1)
	}()
}

// watchHeld returns when the key created at rev is gone, ctx ends (the
// session ended, or Unlock), or the key can no longer be watched (the
// client closed, an error): a lock that cannot be watched counts as lost.
func watchHeld(ctx context.Context, c *etcdgw.Client, key string, rev, from int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		out, err := watchOwn(c.Watch(wctx, key, etcdgw.WithRev(from), etcdgw.WithFilterPut()))
		cancel()
		if err != nil || out != waitReread {
			return
		}
		// Compacted: read the key again.
		r, err := c.Get(ctx, key, etcdgw.WithKeysOnly())
		for fails := 1; err != nil && retryable(err) && pause(ctx, fails); fails++ {
			r, err = c.Get(ctx, key, etcdgw.WithKeysOnly())
		}
		if err != nil || len(r.Kvs) == 0 || r.Kvs[0].CreateRevision != rev {
			return
		}
		from = r.Header.Revision + 1
	}
}

// watchOwn reads a watch of one's own key until the key is deleted
// (waitLost), the watch was compacted (waitReread), or it fails or closes
// (an error, or waitGoOn for a close).
func watchOwn(w etcdgw.WatchChan) (waitOutcome, error) {
	for r := range w {
		if out, err := classifyWatch(r, true); err != nil || out != waitGoOn {
			return out, err
		}
	}
	return waitGoOn, nil
}

// release clears the held state and stops the holder's watch.
func (m *Mutex) release() {
	m.mu.Lock()
	cancel, ended := m.cancel, m.ended
	m.rev, m.done, m.cancel, m.ended = 0, closedChan, nil, nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-ended
	}
}

// Unlock releases the lock: it deletes the key if it is still the one this
// Mutex created. When the delete fails the lock stays held (as far as this
// Mutex knows) and Unlock may be called again. Unlocking a lock not held
// does nothing.
func (m *Mutex) Unlock(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	rev := m.rev
	m.mu.Unlock()
	if rev == 0 {
		return nil
	}
	_, err := m.s.c.Txn(ctx).If(etcdgw.Compare(etcdgw.CreateRevision(m.key), "=", rev)).
		Then(etcdgw.OpDelete(m.key)).Commit()
	if err != nil {
		return err
	}
	m.release()
	return nil
}

// Key returns the lock's key for this session: the name, "/", and the lease
// ID in hex (without the client's key prefix).
func (m *Mutex) Key() string { return m.key }

// Token returns the fencing token of the held lock: its key's create
// revision, which grows with every new holder (0 when not held). Pass it to
// every external store the holder writes to, and have the store refuse a
// token lower than the highest it has seen.
func (m *Mutex) Token() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// IsOwner returns a compare that holds while this Mutex holds the lock:
// CreateRevision(Key()) = Token(). Guard a write in a Txn with it, so that a
// holder that lost the lock cannot write. When the lock is not held it never
// holds.
func (m *Mutex) IsOwner() etcdgw.Cmp {
	rev := m.Token()
	if rev == 0 {
		rev = -1
	}
	return etcdgw.Compare(etcdgw.CreateRevision(m.key), "=", rev)
}

// Done returns a channel closed when the held lock is released or lost: the
// session ended, or the key was deleted (by someone else, or with the lease).
// It is already closed when the lock is not held.
func (m *Mutex) Done() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}
