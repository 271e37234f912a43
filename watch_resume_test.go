package etcdgw_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

// event is what the resume tests compare: the history as the watch saw it.
type event struct {
	typ   mvccpb.Event_EventType
	key   string
	value string
	rev   int64
}

func (e event) String() string { return fmt.Sprintf("%v %s=%s@%d", e.typ, e.key, e.value, e.rev) }

// collect reads events from ch until one at revision last or later, checking
// that revisions only go up.
func collect(t *testing.T, ch etcdgw.WatchChan, last int64) []event {
	t.Helper()
	var out []event
	prev := int64(0)
	for prev < last {
		for _, ev := range nextEvents(t, ch) {
			// Events of one transaction share a revision; across responses
			// revisions never go back. Callers compare the result with a
			// fresh replay of the history, which catches any repeat.
			require.GreaterOrEqual(t, ev.Kv.ModRevision, prev, "revisions never go back")
			prev = ev.Kv.ModRevision
			out = append(out, event{ev.Type, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.ModRevision})
		}
	}
	return out
}

// history is what etcd itself holds between two revisions, read by an
// undisturbed watch.
func history(t *testing.T, endpoint, prefix string, from, to int64) []event {
	t.Helper()
	c := newClientOf(t, endpoint)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ch := c.WatchDir(ctx, prefix, etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)
	return collect(t, ch, to)
}

// writer puts n keys under prefix, retrying each until it is written, and
// reports its progress; it returns the revision of the last write.
func writer(ctx context.Context, c *etcdgw.Client, prefix string, n int, progress chan<- int) (int64, error) {
	var last int64
	for i := 0; i < n; i++ {
		for {
			r, err := c.Set(ctx, fmt.Sprintf("%s%04d", prefix, i), i)
			if err == nil {
				last = r.Header.Revision
				break
			}
			if ctx.Err() != nil {
				return 0, err
			}
			time.Sleep(20 * time.Millisecond) // a retry's pause, not a synchronisation
		}
		if progress != nil {
			progress <- i
		}
	}
	return last, nil
}

// writeDuring puts n keys under dir with writer while calling during with
// the index of each key written, and returns the revision of the last put.
func writeDuring(t *testing.T, ctx context.Context, c *etcdgw.Client, dir string, n int, during func(i int)) int64 {
	t.Helper()
	progress := make(chan int, n)
	var last int64
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, werr = writer(ctx, c, dir, n, progress)
		close(progress)
	}()
	for i := range progress {
		during(i)
	}
	wg.Wait()
	require.NoError(t, werr)
	return last
}

func TestWatchSurvivesServerRestarts(t *testing.T) {
	s := newServer(t, etcdtestConfig{})
	wc := newClientOf(t, s.Endpoint())
	ctx := testCtx(t)
	start, err := wc.Get(ctx, "any")
	require.NoError(t, err)
	from := start.Header.Revision + 1

	watcher := newClientOf(t, s.Endpoint())
	t0 := time.Now()
	ch := watcher.WatchDir(ctx, "r/", etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)

	const n = 300
	restarts := 0
	last := writeDuring(t, ctx, wc, "r/", n, func(i int) {
		if i == 100 || i == 200 {
			require.NoError(t, s.Restart())
			t.Logf("restart %d done %v", i, time.Since(t0))
			restarts++
		}
	})
	require.Equal(t, 2, restarts)

	t.Logf("writer done %v", time.Since(t0))
	got := collect(t, ch, last)
	t.Logf("collect done %v", time.Since(t0))
	want := history(t, s.Endpoint(), "r/", from, last)
	require.Equal(t, len(want), len(got))
	assert.Equal(t, want, got, "every event exactly once, in order, across restarts")
	assert.GreaterOrEqual(t, len(got), n)
}
