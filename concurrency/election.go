package concurrency

import (
	"context"
	"errors"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

var (
	// ErrElectionNotLeader is returned by Proclaim when this Election is not
	// the leader (it never campaigned, resigned, or lost its key).
	ErrElectionNotLeader = errors.New("etcdgw: election: not leader")
	// ErrElectionNoLeader is returned by Leader when nobody leads.
	ErrElectionNoLeader = errors.New("etcdgw: election: no leader")
)

// Election is a leader election on a name, shared with every etcd client
// that uses clientv3/concurrency's layout (etcdgw, clientv3, etcdctl elect):
// each candidate writes the key pfx/<lease ID in hex> with its value,
// attached to its session's lease, and the key with the lowest create
// revision leads.
//
// An Election is used by one goroutine at a time for Campaign, Proclaim and
// Resign; Key and Rev may be called from any goroutine.
type Election struct {
	s   *Session
	pfx string // name + "/"

	mu  sync.Mutex
	key string // our key while campaigning or leading
	rev int64  // its create revision
}

// NewElection returns the election named pfx for session s.
func NewElection(s *Session, pfx string) *Election {
	return &Election{s: s, pfx: pfx + "/"}
}

// ResumeElection returns an Election that leads already, with the key and
// create revision of an earlier Election of the same session (its Key and
// Rev), for a program that restarted and kept its lease.
func ResumeElection(s *Session, pfx string, leaderKey string, leaderRev int64) *Election {
	return &Election{s: s, pfx: pfx + "/", key: leaderKey, rev: leaderRev}
}

// Campaign puts the session forward as a candidate with value val and
// waits, in create-revision order, watching only the candidate just before
// it, until it leads; a candidate that already exists for this session gets
// val. It returns at once with an error matching ErrSessionExpired when the
// session ends, ErrLockLost when its key is deleted while the session lives,
// and ctx's error when ctx ends. Whatever the error, its key is removed:
// a failed Campaign leaves no candidate behind.
func (e *Election) Campaign(ctx context.Context, val string) error {
	if err := e.s.endErr(); err != nil {
		return err
	}
	key := keyFor(e.pfx[:len(e.pfx)-1], e.s.id)
	r, err := e.s.c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.CreateRevision(key), "=", 0)).
		Then(etcdgw.OpPut(key, etcdgw.RawValue(val), etcdgw.WithLease(e.s.id))).
		Else(etcdgw.OpGet(key)).
		Commit()
	if err != nil {
		if errors.Is(err, etcdgw.ErrOutcomeUnknown) {
			_, _ = e.s.c.Delete(context.WithoutCancel(ctx), key)
		}
		return leaseErr(err)
	}
	rev := r.Header.Revision
	if !r.Succeeded {
		kvs := r.Responses[0].Get.Kvs
		if len(kvs) == 0 {
			return ErrLockLost // cannot happen: the compare saw it
		}
		rev = kvs[0].CreateRevision
		if string(kvs[0].Value) != val {
			p, err := e.s.c.Txn(ctx).
				If(etcdgw.Compare(etcdgw.CreateRevision(key), "=", rev)).
				Then(etcdgw.OpPut(key, etcdgw.RawValue(val), etcdgw.WithLease(e.s.id))).
				Commit()
			if err == nil && !p.Succeeded {
				err = e.s.lost(ctx)
			}
			if err != nil {
				e.remove(ctx, key, rev)
				return err
			}
		}
	}
	e.set(key, rev)
	if _, err := waitTurn(ctx, e.s, e.pfx, key, rev); err != nil {
		e.remove(ctx, key, rev)
		e.set("", 0)
		return err
	}
	return nil
}

// remove deletes our candidate key if it is still the one created at rev,
// best effort, after ctx may have ended.
func (e *Election) remove(ctx context.Context, key string, rev int64) {
	_, _ = e.s.c.Txn(context.WithoutCancel(ctx)).
		If(etcdgw.Compare(etcdgw.CreateRevision(key), "=", rev)).
		Then(etcdgw.OpDelete(key)).Commit()
}

func (e *Election) set(key string, rev int64) {
	e.mu.Lock()
	e.key, e.rev = key, rev
	e.mu.Unlock()
}

func (e *Election) state() (string, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.key, e.rev
}

// Proclaim sets the leader's value without a new election. Errors:
// ErrElectionNotLeader when this Election does not lead (its key is gone or
// was never written; it then forgets it).
func (e *Election) Proclaim(ctx context.Context, val string) error {
	key, rev := e.state()
	if key == "" {
		return ErrElectionNotLeader
	}
	r, err := e.s.c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.CreateRevision(key), "=", rev)).
		Then(etcdgw.OpPut(key, etcdgw.RawValue(val), etcdgw.WithLease(e.s.id))).
		Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		e.set("", 0)
		return ErrElectionNotLeader
	}
	return nil
}

// Resign gives up leadership: it deletes the leader's key if it is still
// ours. When the delete fails, the Election keeps leading (as far as it
// knows) and Resign may be called again; once it succeeded, Resign does
// nothing and returns nil. A key already gone (its lease ended, or an earlier
// Resign was applied and its answer lost) is no error, and resigning when not
// leading does nothing.
func (e *Election) Resign(ctx context.Context) error {
	key, rev := e.state()
	if key == "" {
		return nil
	}
	_, err := e.s.c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.CreateRevision(key), "=", rev)).
		Then(etcdgw.OpDelete(key)).
		Commit()
	if err != nil {
		return err
	}
	e.set("", 0)
	return nil
}

// Leader returns the current leader's key and value (values as written, with
// no serializer), or ErrElectionNoLeader.
func (e *Election) Leader(ctx context.Context) (*etcdgw.GetResponse, error) {
	r, err := e.leader(ctx)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, ErrElectionNoLeader
	}
	return r, nil
}

func (e *Election) leader(ctx context.Context) (*etcdgw.GetResponse, error) {
	r, err := e.s.c.Txn(ctx).Then(firstCreate(e.pfx)).Commit()
	if err != nil {
		return nil, err
	}
	return r.Responses[0].Get, nil
}

// Observe reports the leader: first the current one, then each change in
// order (a new leader, or a Proclaim of the leader's value). A response with
// no Kvs means that nobody leads. A response is sent only when it differs
// from the one before; changes faster than a read may be seen as one. The
// channel must be read; it closes when ctx ends (cancel ctx to stop
// observing), the client closes, or the election cannot be read (an error
// other than a compaction, which is read through, or etcd being out of
// reach, which is waited out).
func (e *Election) Observe(ctx context.Context) <-chan etcdgw.GetResponse {
	ch := make(chan etcdgw.GetResponse)
	go func() {
		defer close(ch)
		e.observe(ctx, ch)
	}()
	return ch
}

func (e *Election) observe(ctx context.Context, ch chan<- etcdgw.GetResponse) {
	var last *mvccpb.KeyValue
	sent := false
	send := func(r etcdgw.GetResponse) bool {
		var kv *mvccpb.KeyValue
		if len(r.Kvs) > 0 {
			kv = r.Kvs[0]
		}
		if sent && sameLeader(last, kv) {
			return true
		}
		select {
		case ch <- r:
			last, sent = kv, true
			return true
		case <-ctx.Done():
			return false
		}
	}
	fails := 0
	for ctx.Err() == nil {
		r, err := e.leader(ctx)
		if err != nil {
			// etcd out of reach for now: keep trying while ctx lasts.
			if fails++; retryable(err) && pause(ctx, fails) {
				continue
			}
			return
		}
		fails = 0
		if !send(*r) {
			return
		}
		if !e.followLeader(ctx, r, send) {
			return
		}
	}
}

// followLeader watches from the read r: the leader's key when there is one
// (its new values are sent; its delete ends the round), or the whole prefix
// for a first candidate when there is none. It returns false when observing
// must stop, true to read the leader again.
func (e *Election) followLeader(ctx context.Context, r *etcdgw.GetResponse, send func(etcdgw.GetResponse) bool) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var w etcdgw.WatchChan
	if len(r.Kvs) == 0 {
		w = e.s.c.Watch(wctx, e.pfx, etcdgw.WithPrefix(), etcdgw.WithRev(r.Header.Revision+1), etcdgw.WithFilterDelete())
	} else {
		w = e.s.c.Watch(wctx, string(r.Kvs[0].Key), etcdgw.WithRev(r.Header.Revision+1))
	}
	for wr := range w {
		if err := wr.Err(); err != nil {
			return errors.Is(err, etcdgw.ErrCompacted)
		}
		for _, ev := range wr.Events {
			if len(r.Kvs) == 0 || ev.Type == mvccpb.DELETE {
				return true // a first candidate, or the leader went: read again
			}
			if !send(etcdgw.GetResponse{Header: wr.Header, Kvs: []*mvccpb.KeyValue{ev.Kv}, Count: 1}) {
				return false
			}
		}
	}
	return false
}

// sameLeader reports whether two observations show the same leader with the
// same value (nil: no leader).
func sameLeader(a, b *mvccpb.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return string(a.Key) == string(b.Key) && a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision
}

// Key returns the key of this Election's candidacy while it campaigns or
// leads (without the client's key prefix), or "".
func (e *Election) Key() string {
	key, _ := e.state()
	return key
}

// Rev returns the create revision of this Election's key while it
// campaigns or leads, or 0: the fencing token of a leader.
func (e *Election) Rev() int64 {
	_, rev := e.state()
	return rev
}
