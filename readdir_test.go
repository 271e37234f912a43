package etcdgw_test

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// sortTargetOf returns the field of kv that target sorts by, compared with
// the next key's by cmpTarget.
func cmpTarget(target etcdgw.SortTarget, a, b *mvccpb.KeyValue) int {
	switch target {
	case etcdgw.SortByVersion:
		return cmp.Compare(a.Version, b.Version)
	case etcdgw.SortByCreateRevision:
		return cmp.Compare(a.CreateRevision, b.CreateRevision)
	case etcdgw.SortByModRevision:
		return cmp.Compare(a.ModRevision, b.ModRevision)
	case etcdgw.SortByValue:
		return bytes.Compare(a.Value, b.Value)
	}
	return bytes.Compare(a.Key, b.Key)
}

// sortedLocally sorts kvs, in key order, by target in order, ties in key
// order: what ReadDir must return.
func sortedLocally(kvs []*mvccpb.KeyValue, target etcdgw.SortTarget, order etcdgw.SortOrder) []*mvccpb.KeyValue {
	out := slices.Clone(kvs)
	if target == etcdgw.SortByKey && order != etcdgw.SortDescend {
		return out
	}
	slices.SortStableFunc(out, func(a, b *mvccpb.KeyValue) int {
		c := cmpTarget(target, a, b)
		if order == etcdgw.SortDescend {
			c = -c
		}
		return c
	})
	return out
}

// TestReadDirSortEveryTarget reads a directory of several pages with every
// sort target and order, with and without WithLimit: every key comes back
// exactly once, in the order asked (etcd treats SortNone with a target other
// than the key as SortAscend).
func TestReadDirSortEveryTarget(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	const n = 1200
	put := func(ops []etcdgw.Op) {
		t.Helper()
		for len(ops) > 0 {
			k := min(len(ops), 100)
			_, err := c.Txn(ctx).Then(ops[:k]...).Commit()
			require.NoError(t, err)
			ops = ops[k:]
		}
	}
	// Keys written 100 to a transaction share their create and mod
	// revisions; values repeat; some keys are written again, with their
	// versions: every target has ties.
	var ops []etcdgw.Op
	for i := range n {
		ops = append(ops, etcdgw.OpPut(fmt.Sprintf("d/%04d", i), fmt.Sprint(i*7%13)))
	}
	put(ops)
	for round := 1; round <= 2; round++ {
		ops = ops[:0]
		for i := n - 1; i >= 0; i -= 5 * round {
			ops = append(ops, etcdgw.OpPut(fmt.Sprintf("d/%04d", i), fmt.Sprint(i%11)))
		}
		put(ops)
	}
	setKeys(t, c, "d", "outside", "e", "outside")

	ref, err := c.Get(ctx, "d/", etcdgw.WithPrefix())
	require.NoError(t, err)
	require.Len(t, ref.Kvs, n)

	targets := []etcdgw.SortTarget{etcdgw.SortByKey, etcdgw.SortByVersion, etcdgw.SortByCreateRevision, etcdgw.SortByModRevision, etcdgw.SortByValue}
	orders := []etcdgw.SortOrder{etcdgw.SortNone, etcdgw.SortAscend, etcdgw.SortDescend}
	for _, target := range targets {
		for _, order := range orders {
			t.Run(fmt.Sprintf("%v/%v", target, order), func(t *testing.T) {
				want := sortedLocally(ref.Kvs, target, order)

				all, err := c.ReadDir(ctx, "d/", etcdgw.WithSort(target, order))
				require.NoError(t, err)
				assert.Equal(t, keys(want), keys(all.Kvs), "every key once, sorted by the target, ties in key order")
				assert.Equal(t, int64(n), all.Count)
				assert.False(t, all.More)
				for i, kv := range all.Kvs {
					require.Equal(t, want[i].Value, kv.Value, "value of %s", kv.Key)
				}

				const limit = 700
				top, err := c.ReadDir(ctx, "d/", etcdgw.WithSort(target, order), etcdgw.WithLimit(limit))
				require.NoError(t, err)
				require.Len(t, top.Kvs, limit)
				assert.True(t, top.More)
				assert.Equal(t, int64(n), top.Count)
				seen := map[string]bool{}
				for i, kv := range top.Kvs {
					require.False(t, seen[string(kv.Key)], "%s twice", kv.Key)
					seen[string(kv.Key)] = true
					// Ties at the limit are etcd's to break: the targets are
					// those of the top N, the keys need not be.
					require.Zero(t, cmpTarget(target, want[i], kv), "place %d: %s, want the target of %s", i, kv.Key, want[i].Key)
				}
			})
		}
	}
	t.Run("SortByValue/KeysOnly", func(t *testing.T) {
		want := sortedLocally(ref.Kvs, etcdgw.SortByValue, etcdgw.SortDescend)
		r, err := c.ReadDir(ctx, "d/", etcdgw.WithSort(etcdgw.SortByValue, etcdgw.SortDescend), etcdgw.WithKeysOnly())
		require.NoError(t, err)
		assert.Equal(t, keys(want), keys(r.Kvs), "sorted by the values it does not return")
		for _, kv := range r.Kvs {
			require.Nil(t, kv.Value)
		}
	})
}

// fillDir writes n keys dir%04d, 100 to a transaction.
func fillDir(t *testing.T, c *etcdgw.Client, dir string, n int) []string {
	t.Helper()
	ctx := testCtx(t)
	var want []string
	var ops []etcdgw.Op
	for i := range n {
		k := fmt.Sprintf("%s%04d", dir, i)
		want = append(want, k)
		ops = append(ops, etcdgw.OpPut(k, "v"))
		if len(ops) == 100 || i == n-1 {
			_, err := c.Txn(ctx).Then(ops...).Commit()
			require.NoError(t, err)
			ops = ops[:0]
		}
	}
	return want
}

// TestReadDirRestartsAfterCompaction compacts the revision of a ReadDir
// between its pages: without WithRev it starts over at a new revision, a few
// times at most; with WithRev it fails with ErrCompacted.
func TestReadDirRestartsAfterCompaction(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	want := fillDir(t, c, "d/", 1200)
	setAndCompact := func(key string) int64 {
		r, err := c.Set(ctx, key, "x")
		require.NoError(t, err)
		require.NoError(t, c.Compact(ctx, r.Header.Revision))
		return r.Header.Revision
	}

	t.Run("NoRev", func(t *testing.T) {
		pages := 0
		var compactedAt int64
		restore := etcdgw.SetPageHook(c, func() {
			pages++
			if pages == 1 {
				compactedAt = setAndCompact("d/0000-new")
			}
		})
		defer restore()
		r, err := c.ReadDir(ctx, "d/")
		require.NoError(t, err)
		assert.Greater(t, pages, 2, "a first page, then the pages read again")
		assert.Equal(t, append([]string{want[0], "d/0000-new"}, want[1:]...), keys(r.Kvs), "read at the new revision")
		assert.GreaterOrEqual(t, r.Header.Revision, compactedAt)
		assert.Equal(t, int64(len(want)+1), r.Count)
		_, err = c.Delete(ctx, "d/0000-new")
		require.NoError(t, err)
	})

	t.Run("Bounded", func(t *testing.T) {
		pages := 0
		restore := etcdgw.SetPageHook(c, func() {
			pages++
			setAndCompact("other") // after every page
		})
		defer restore()
		_, err := c.ReadDir(ctx, "d/")
		require.ErrorIs(t, err, etcdgw.ErrCompacted, "it gives up")
		assert.Greater(t, pages, 1, "it started over")
		assert.LessOrEqual(t, pages, 10, "a few times")
	})

	t.Run("WithRev", func(t *testing.T) {
		now, err := c.Get(ctx, "d/0000")
		require.NoError(t, err)
		pages := 0
		restore := etcdgw.SetPageHook(c, func() {
			pages++
			setAndCompact("other")
		})
		defer restore()
		_, err = c.ReadDir(ctx, "d/", etcdgw.WithRev(now.Header.Revision))
		require.ErrorIs(t, err, etcdgw.ErrCompacted)
		assert.Equal(t, 1, pages, "the caller's revision is gone: no second try")
	})
}

// TestReadDirSerializableOneMember reads a directory of several pages with
// WithSerializable from a 3-member cluster: every page goes to the member
// that answered the first, whose revision the later pages read; when that
// member fails between pages, the ReadDir starts over on another.
func TestReadDirSerializableOneMember(t *testing.T) {
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "rdser"})
	ps := make([]*etcdtest.RecordingProxy, cl.Size())
	var eps []string
	for i := range ps {
		p, err := etcdtest.NewRecordingProxy(cl.Member(i).Endpoint(), nil)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, p.Close()) })
		ps[i] = p
		eps = append(eps, p.Endpoint())
	}
	c, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithSerializer(etcdgw.Raw))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx := testCtx(t)
	want := fillDir(t, c, "d/", 1200)
	// Every member has applied the writes before the count starts.
	for i := range cl.Size() {
		r, err := newClientOf(t, cl.Member(i).Endpoint()).Get(ctx, "d/", etcdgw.WithPrefix(), etcdgw.WithCountOnly())
		require.NoError(t, err)
		require.Equal(t, int64(len(want)), r.Count)
	}
	const rangePath = "/v3/kv/range"
	// ranges returns how many Range requests each member got since the reset.
	ranges := func() []int {
		n := make([]int, len(ps))
		for i, p := range ps {
			n[i] = p.Count(rangePath)
		}
		return n
	}
	for round := range 2 * len(ps) { // the ring starts each ReadDir at another member
		for _, p := range ps {
			p.Reset()
		}
		r, err := c.ReadDir(ctx, "d/", etcdgw.WithSerializable())
		require.NoError(t, err)
		require.Equal(t, want, keys(r.Kvs))
		n := ranges()
		busy := 0
		for _, k := range n {
			if k > 0 {
				busy++
				assert.GreaterOrEqual(t, k, 2, "round %d: several pages", round)
			}
		}
		require.Equal(t, 1, busy, "round %d: pages per member %v", round, n)
	}

	// The member of the first page goes away before the second.
	for _, p := range ps {
		p.Reset()
	}
	gone := -1
	restore := etcdgw.SetPageHook(c, func() {
		if gone >= 0 {
			return
		}
		for i, k := range ranges() {
			if k > 0 {
				gone = i
				require.NoError(t, ps[i].Close())
			}
		}
	})
	defer restore()
	r, err := c.ReadDir(ctx, "d/", etcdgw.WithSerializable())
	require.NoError(t, err)
	require.GreaterOrEqual(t, gone, 0)
	assert.Equal(t, want, keys(r.Kvs), "started over on another member")
	others := 0
	for i, k := range ranges() {
		if i != gone {
			others += k
		}
	}
	assert.GreaterOrEqual(t, others, 2, "the pages read again elsewhere")
}
