package concurrency_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
)

// fencedStore is an external store that accepts a write only with a fencing
// token at least as high as the highest it has accepted.
type fencedStore struct {
	mu      sync.Mutex
	highest int64
	value   string
}

func (s *fencedStore) Write(token int64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return fmt.Errorf("stale token %d: %d seen", token, s.highest)
	}
	s.highest, s.value = token, value
	return nil
}

// A lock holder fences its writes: in etcd with IsOwner in a transaction,
// elsewhere with its token.
func Example_fencing() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(shared.Endpoint()),
		etcdgw.WithKeyPrefix(fmt.Sprintf("/examples/fencing/%d/", time.Now().UnixNano())),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	store := &fencedStore{}

	// Two holders in turn; the first is slow and writes after losing the lock.
	first, err := concurrency.NewSession(c, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	m1 := concurrency.NewMutex(first, "locks/config")
	if err := m1.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("first holder's write:", store.Write(m1.Token(), "first"))
	first.Close() // its lease is revoked: the lock goes to the next waiter

	second, err := concurrency.NewSession(c, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()
	m2 := concurrency.NewMutex(second, "locks/config")
	if err := m2.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	defer m2.Unlock(ctx)
	resp, err := c.Txn(ctx).If(m2.IsOwner()).Then(etcdgw.OpPut("config", "second")).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second holder's guarded write applied:", resp.Succeeded)
	fmt.Println("second holder's write:", store.Write(m2.Token(), "second"))

	// The first holder wakes up, still believing it holds the lock.
	resp, err = c.Txn(ctx).If(m1.IsOwner()).Then(etcdgw.OpPut("config", "first")).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stale guarded write applied:", resp.Succeeded)
	fmt.Println("stale write refused:", store.Write(m1.Token(), "first") != nil)
	fmt.Println("store holds:", store.value)
	// Output:
	// first holder's write: <nil>
	// second holder's guarded write applied: true
	// second holder's write: <nil>
	// stale guarded write applied: false
	// stale write refused: true
	// store holds: second
}
