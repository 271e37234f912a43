package etcdgw_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

func keys(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

func TestSetGetJSON(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	type cfg struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	}
	put, err := c.Set(ctx, "svc", cfg{"a", 80})
	require.NoError(t, err)
	assert.Positive(t, put.Header.Revision)
	assert.NotZero(t, put.Header.ClusterID)
	assert.NotZero(t, put.Header.MemberID)
	assert.Nil(t, put.PrevKv)

	got, err := c.Get(ctx, "svc")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.Equal(t, "svc", string(got.Kvs[0].Key), "key prefix stripped")
	assert.Equal(t, `{"host":"a","port":80}`, string(got.Kvs[0].Value))
	assert.Equal(t, put.Header.Revision, got.Kvs[0].ModRevision)
	assert.Equal(t, int64(1), got.Kvs[0].Version)
	assert.Equal(t, int64(1), got.Count)
	var back cfg
	require.NoError(t, c.Decode(got.Kvs[0].Value, &back))
	assert.Equal(t, cfg{"a", 80}, back)

	put2, err := c.Set(ctx, "svc", 42, etcdgw.WithPrevKV())
	require.NoError(t, err)
	require.NotNil(t, put2.PrevKv)
	assert.Equal(t, "svc", string(put2.PrevKv.Key))
	assert.Equal(t, `{"host":"a","port":80}`, string(put2.PrevKv.Value))

	// Reading at the first revision still sees the old value.
	old, err := c.Get(ctx, "svc", etcdgw.WithRev(put.Header.Revision))
	require.NoError(t, err)
	assert.Equal(t, `{"host":"a","port":80}`, string(old.Kvs[0].Value))
}

func TestGetMissingIsNoError(t *testing.T) {
	c, _ := prefixedClient(t)
	got, err := c.Get(testCtx(t), "nothing-here")
	require.NoError(t, err)
	assert.Empty(t, got.Kvs)
	assert.Zero(t, got.Count)
	assert.Positive(t, got.Header.Revision)
}

func TestRawSerializer(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	_, err := c.Set(ctx, "s", `"quoted" text`)
	require.NoError(t, err)
	_, err = c.Set(ctx, "b", []byte{0, 1, 0xff})
	require.NoError(t, err)
	_, err = c.Set(ctx, "empty", "")
	require.NoError(t, err)

	got, err := c.Get(ctx, "s")
	require.NoError(t, err)
	var s string
	require.NoError(t, c.Decode(got.Kvs[0].Value, &s))
	assert.Equal(t, `"quoted" text`, s)
	got, err = c.Get(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 0xff}, got.Kvs[0].Value)
	got, err = c.Get(ctx, "empty")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.Empty(t, got.Kvs[0].Value)

	for _, bad := range []any{111, nil, 1.5, struct{}{}} {
		_, err = c.Set(ctx, "n", bad)
		assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument, "%T", bad)
	}
	got, err = c.Get(ctx, "n")
	require.NoError(t, err)
	assert.Empty(t, got.Kvs, "a refused value writes nothing")
	var n int
	assert.Error(t, c.Decode([]byte("1"), &n), "Raw decodes only into *string and *[]byte")
}

func TestJSONSerializerRefusesValue(t *testing.T) {
	c, _ := prefixedClient(t)
	_, err := c.Set(testCtx(t), "ch", make(chan int))
	assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument)
}

func TestEmptyKeyRefused(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	_, err := c.Get(ctx, "")
	assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided)
	_, err = c.Set(ctx, "", "v")
	assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided)
	_, err = c.Delete(ctx, "")
	assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided)
	_, err = c.SetNX(ctx, "", "v")
	assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided)
	_, err = c.SetX(ctx, "", "v")
	assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided)
}

func setKeys(t *testing.T, c *etcdgw.Client, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		_, err := c.Set(testCtx(t), kv[i], kv[i+1])
		require.NoError(t, err)
	}
}

func TestRangeOptions(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	setKeys(t, c, "a", "3", "b/1", "1", "b/2", "2", "b0", "x", "c", "0")

	get := func(key string, opts ...etcdgw.OpOption) *etcdgw.GetResponse {
		t.Helper()
		r, err := c.Get(ctx, key, opts...)
		require.NoError(t, err)
		return r
	}
	assert.Equal(t, []string{"b/1", "b/2"}, keys(get("b/", etcdgw.WithPrefix()).Kvs))
	assert.Equal(t, []string{"b/1", "b/2", "b0"}, keys(get("b", etcdgw.WithPrefix()).Kvs))
	assert.Equal(t, []string{"a", "b/1", "b/2", "b0", "c"}, keys(get("", etcdgw.WithPrefix()).Kvs), "the empty prefix is every key under the key prefix")
	assert.Equal(t, []string{"b/1", "b/2"}, keys(get("b/", etcdgw.WithRange("b0")).Kvs))
	assert.Equal(t, []string{"b0", "c"}, keys(get("b0", etcdgw.WithFromKey()).Kvs))
	assert.Equal(t, []string{"b0", "c"}, keys(get("b0", etcdgw.WithRange("\x00")).Kvs))

	lim := get("", etcdgw.WithPrefix(), etcdgw.WithLimit(2))
	assert.Equal(t, []string{"a", "b/1"}, keys(lim.Kvs))
	assert.True(t, lim.More)
	assert.Equal(t, int64(5), lim.Count)

	desc := get("", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByKey, etcdgw.SortDescend))
	assert.Equal(t, []string{"c", "b0", "b/2", "b/1", "a"}, keys(desc.Kvs))
	byVal := get("", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByValue, etcdgw.SortAscend))
	assert.Equal(t, []string{"c", "b/1", "b/2", "a", "b0"}, keys(byVal.Kvs))
	byMod := get("", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByModRevision, etcdgw.SortDescend))
	assert.Equal(t, []string{"c", "b0", "b/2", "b/1", "a"}, keys(byMod.Kvs))
	byCreate := get("", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByCreateRevision, etcdgw.SortAscend))
	assert.Equal(t, []string{"a", "b/1", "b/2", "b0", "c"}, keys(byCreate.Kvs))
	setKeys(t, c, "a", "again")
	byVer := get("", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByVersion, etcdgw.SortDescend))
	assert.Equal(t, "a", string(byVer.Kvs[0].Key))

	ko := get("", etcdgw.WithPrefix(), etcdgw.WithKeysOnly())
	assert.Len(t, ko.Kvs, 5)
	for _, kv := range ko.Kvs {
		assert.Nil(t, kv.Value)
	}
	co := get("", etcdgw.WithPrefix(), etcdgw.WithCountOnly())
	assert.Empty(t, co.Kvs)
	assert.Equal(t, int64(5), co.Count)
	ser := get("a", etcdgw.WithSerializable())
	assert.Equal(t, "again", string(ser.Kvs[0].Value))

	all := get("", etcdgw.WithPrefix())
	revs := map[string]*mvccpb.KeyValue{}
	for _, kv := range all.Kvs {
		revs[string(kv.Key)] = kv
	}
	minMod := get("", etcdgw.WithPrefix(), etcdgw.WithMinModRev(revs["b0"].ModRevision))
	assert.Equal(t, []string{"a", "b0", "c"}, keys(minMod.Kvs))
	maxMod := get("", etcdgw.WithPrefix(), etcdgw.WithMaxModRev(revs["b/2"].ModRevision))
	assert.Equal(t, []string{"b/1", "b/2"}, keys(maxMod.Kvs))
	minCreate := get("", etcdgw.WithPrefix(), etcdgw.WithMinCreateRev(revs["b0"].CreateRevision))
	assert.Equal(t, []string{"b0", "c"}, keys(minCreate.Kvs))
	maxCreate := get("", etcdgw.WithPrefix(), etcdgw.WithMaxCreateRev(revs["b/1"].CreateRevision))
	assert.Equal(t, []string{"a", "b/1"}, keys(maxCreate.Kvs))
}

func TestPrefixEndWithFFBytes(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	setKeys(t, c, "k\xff", "1", "k\xff\xff", "2", "k\xff\xffz", "3", "l", "4", "k\xfe", "5")
	got, err := c.Get(testCtx(t), "k\xff", etcdgw.WithPrefix())
	require.NoError(t, err)
	assert.Equal(t, []string{"k\xff", "k\xff\xff", "k\xff\xffz"}, keys(got.Kvs))
	got, err = c.Get(testCtx(t), "k\xff\xff", etcdgw.WithPrefix())
	require.NoError(t, err)
	assert.Equal(t, []string{"k\xff\xff", "k\xff\xffz"}, keys(got.Kvs))
}

func TestOptionsThatDoNotApply(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	cases := []struct {
		name string
		call func() error
	}{
		{"Set WithPrefix", func() error { _, err := c.Set(ctx, "k", 1, etcdgw.WithPrefix()); return err }},
		{"Get WithLease", func() error { _, err := c.Get(ctx, "k", etcdgw.WithLease(5)); return err }},
		{"Get WithPrevKV", func() error { _, err := c.Get(ctx, "k", etcdgw.WithPrevKV()); return err }},
		{"Delete WithLimit", func() error { _, err := c.Delete(ctx, "k", etcdgw.WithLimit(1)); return err }},
		{"ReadDir WithPrefix", func() error { _, err := c.ReadDir(ctx, "k", etcdgw.WithPrefix()); return err }},
		{"RmDir WithRange", func() error { _, err := c.RmDir(ctx, "k", etcdgw.WithRange("z")); return err }},
		{"SetNX WithPrevKV", func() error { _, err := c.SetNX(ctx, "k", 1, etcdgw.WithPrevKV()); return err }},
		{"Grant WithRev", func() error { _, err := c.Grant(ctx, 5, etcdgw.WithRev(1)); return err }},
		{"negative limit", func() error { _, err := c.Get(ctx, "k", etcdgw.WithPrefix(), etcdgw.WithLimit(-1)); return err }},
		{"zero rev", func() error { _, err := c.Get(ctx, "k", etcdgw.WithRev(0)); return err }},
		{"bad sort", func() error { _, err := c.Get(ctx, "k", etcdgw.WithSort(9, etcdgw.SortAscend)); return err }},
		{"prefix and range", func() error { _, err := c.Get(ctx, "k", etcdgw.WithPrefix(), etcdgw.WithRange("z")); return err }},
		{"empty range end", func() error { _, err := c.Get(ctx, "k", etcdgw.WithRange("")); return err }},
		{"lease and ignore lease", func() error { _, err := c.Set(ctx, "k", 1, etcdgw.WithLease(1), etcdgw.WithIgnoreLease()); return err }},
		{"zero lease", func() error { _, err := c.Set(ctx, "k", 1, etcdgw.WithLease(0)); return err }},
		{"nil option", func() error { _, err := c.Get(ctx, "k", nil); return err }},
	}
	for _, tc := range cases {
		err := tc.call()
		assert.ErrorIs(t, err, etcdgw.ErrInvalidOption, tc.name)
	}
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Empty(t, got.Kvs, "no refused call wrote anything")
}

func TestIgnoreValueAndLease(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	lease, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", "v1", etcdgw.WithLease(lease.ID))
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", nil, etcdgw.WithIgnoreValue())
	require.NoError(t, err)
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, `"v1"`, string(got.Kvs[0].Value))
	assert.Equal(t, int64(0), got.Kvs[0].Lease, "a put without lease options detaches the lease")

	_, err = c.Set(ctx, "k", "v2", etcdgw.WithLease(lease.ID))
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", "v3", etcdgw.WithIgnoreLease())
	require.NoError(t, err)
	got, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, `"v3"`, string(got.Kvs[0].Value))
	assert.Equal(t, int64(lease.ID), got.Kvs[0].Lease)

	_, err = c.Set(ctx, "k", "x", etcdgw.WithIgnoreValue())
	assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument, "a value with WithIgnoreValue")
	_, err = c.Set(ctx, "missing", nil, etcdgw.WithIgnoreValue())
	assert.Error(t, err, "etcd refuses ignore_value on a missing key")
}

func TestDelete(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	setKeys(t, c, "a", "1", "b/1", "2", "b/2", "3", "c", "4", "d", "5")

	d, err := c.Delete(ctx, "missing")
	require.NoError(t, err)
	assert.Zero(t, d.Deleted)

	d, err = c.Delete(ctx, "a", etcdgw.WithPrevKV())
	require.NoError(t, err)
	assert.Equal(t, int64(1), d.Deleted)
	require.Len(t, d.PrevKvs, 1)
	assert.Equal(t, "a", string(d.PrevKvs[0].Key))
	assert.Equal(t, `"1"`, string(d.PrevKvs[0].Value))

	d, err = c.Delete(ctx, "b/", etcdgw.WithPrefix())
	require.NoError(t, err)
	assert.Equal(t, int64(2), d.Deleted)
	assert.Empty(t, d.PrevKvs)

	d, err = c.Delete(ctx, "c", etcdgw.WithRange("d"))
	require.NoError(t, err)
	assert.Equal(t, int64(1), d.Deleted)

	d, err = c.Delete(ctx, "", etcdgw.WithFromKey())
	require.NoError(t, err)
	assert.Equal(t, int64(1), d.Deleted)
	all, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, all.Kvs)
}

func TestReadDirAndRmDirBoundaries(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	setKeys(t, c, "/wdir", "0", "/wdir-", "1", "/wdir/", "2", "/wdir/a", "3", "/wdir/b/c", "4", "/wdir0", "5")
	r, err := c.ReadDir(ctx, "/wdir/")
	require.NoError(t, err)
	assert.Equal(t, []string{"/wdir/", "/wdir/a", "/wdir/b/c"}, keys(r.Kvs))
	assert.Equal(t, int64(3), r.Count)

	r, err = c.ReadDir(ctx, "/wdir/", etcdgw.WithKeysOnly(), etcdgw.WithLimit(2))
	require.NoError(t, err)
	assert.Equal(t, []string{"/wdir/", "/wdir/a"}, keys(r.Kvs))
	assert.True(t, r.More)
	assert.Nil(t, r.Kvs[0].Value)

	r, err = c.ReadDir(ctx, "/wdir/", etcdgw.WithCountOnly())
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Count)
	assert.Empty(t, r.Kvs)

	d, err := c.RmDir(ctx, "/wdir/", etcdgw.WithPrevKV())
	require.NoError(t, err)
	assert.Equal(t, int64(3), d.Deleted)
	assert.Equal(t, []string{"/wdir/", "/wdir/a", "/wdir/b/c"}, keys(d.PrevKvs))
	r, err = c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"/wdir", "/wdir-", "/wdir0"}, keys(r.Kvs))
}

func TestKeyPrefixIsolation(t *testing.T) {
	raw := newClient(t)
	p := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(p))
	other := newClient(t, etcdgw.WithKeyPrefix(p+"other/"))
	ctx := testCtx(t)
	_, err := c.Set(ctx, "k", 1)
	require.NoError(t, err)
	_, err = other.Set(ctx, "k", 2)
	require.NoError(t, err)

	got, err := raw.Get(ctx, p+"k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "the key prefix is prepended on the wire")
	assert.Equal(t, p+"k", string(got.Kvs[0].Key))

	all, err := other.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys(all.Kvs), "ReadDir(\"\") stays inside the key prefix")
	from, err := other.Get(ctx, "", etcdgw.WithFromKey())
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys(from.Kvs), "WithFromKey stays inside the key prefix")
	mine, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"k", "other/k"}, keys(mine.Kvs))
}

func TestSetNXAndSetX(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	// SetX on a missing key writes nothing and does not succeed.
	x, err := c.SetX(ctx, "k", "x")
	require.NoError(t, err)
	assert.False(t, x.Succeeded)
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Empty(t, got.Kvs)

	nx, err := c.SetNX(ctx, "k", "first")
	require.NoError(t, err)
	assert.True(t, nx.Succeeded, "absent, now set")
	nx, err = c.SetNX(ctx, "k", "second")
	require.NoError(t, err)
	assert.False(t, nx.Succeeded, "present: not written")
	got, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, `"first"`, string(got.Kvs[0].Value))

	x, err = c.SetX(ctx, "k", "updated", etcdgw.WithPrevKV())
	require.NoError(t, err)
	assert.True(t, x.Succeeded, "existed, and updated")
	require.Len(t, x.Responses, 1)
	require.NotNil(t, x.Responses[0].Put)
	assert.Equal(t, "k", string(x.Responses[0].Put.PrevKv.Key))
	assert.Equal(t, `"first"`, string(x.Responses[0].Put.PrevKv.Value))
	got, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, `"updated"`, string(got.Kvs[0].Value))
}

func TestCompactAndRevisionErrors(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	first, err := c.Set(ctx, "k", 1)
	require.NoError(t, err)
	second, err := c.Set(ctx, "k", 2)
	require.NoError(t, err)
	require.NoError(t, c.Compact(ctx, second.Header.Revision))

	_, err = c.Get(ctx, "k", etcdgw.WithRev(first.Header.Revision))
	require.ErrorIs(t, err, etcdgw.ErrCompacted)
	var e *etcdgw.Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, 11, e.Code)
	assert.Equal(t, 400, e.HTTPStatus)
	assert.Equal(t, shared.Endpoint(), e.Endpoint)
	assert.Contains(t, e.Message, "compacted")
	assert.Contains(t, err.Error(), "etcdgw: ")

	err = c.Compact(ctx, first.Header.Revision)
	assert.ErrorIs(t, err, etcdgw.ErrCompacted, "compacting below the compacted revision")
	_, err = c.Get(ctx, "k", etcdgw.WithRev(second.Header.Revision+1_000_000))
	assert.ErrorIs(t, err, etcdgw.ErrFutureRev)
	assert.False(t, errors.Is(err, etcdgw.ErrCompacted))
	assert.ErrorIs(t, c.Compact(ctx, 0), etcdgw.ErrInvalidArgument)
}

func TestReadDirPagesAtOneRevision(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	const n = 2500
	var want []string
	ops := make([]etcdgw.Op, 0, 100)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("dir/%05d", i)
		want = append(want, k)
		ops = append(ops, etcdgw.OpPut(k, strings.Repeat("v", i%50)))
		if len(ops) == cap(ops) {
			_, err := c.Txn(ctx).Then(ops...).Commit()
			require.NoError(t, err)
			ops = ops[:0]
		}
	}
	pages := 0
	restore := etcdgw.SetPageHook(c, func() {
		pages++
		if pages == 1 {
			// Between the first and second page: these must not show.
			_, err := c.Set(ctx, "dir/00000-new", "x")
			require.NoError(t, err)
			_, err = c.Delete(ctx, "dir/02000")
			require.NoError(t, err)
		}
	})
	r, err := c.ReadDir(ctx, "dir/")
	restore()
	require.NoError(t, err)
	assert.Greater(t, pages, 1, "read in several pages")
	assert.Equal(t, want, keys(r.Kvs), "one revision: neither the new key nor the deletion shows")
	assert.Equal(t, int64(n), r.Count)
	assert.False(t, r.More)
	for i, kv := range r.Kvs {
		if len(kv.Value) != i%50 {
			t.Fatalf("value of %s has %d bytes, want %d", kv.Key, len(kv.Value), i%50)
		}
	}

	lim, err := c.ReadDir(ctx, "dir/", etcdgw.WithLimit(1234))
	require.NoError(t, err)
	assert.Len(t, lim.Kvs, 1234)
	assert.True(t, lim.More)
	desc, err := c.ReadDir(ctx, "dir/", etcdgw.WithSort(etcdgw.SortByKey, etcdgw.SortDescend), etcdgw.WithLimit(1500))
	require.NoError(t, err)
	require.Len(t, desc.Kvs, 1500)
	assert.True(t, sort.SliceIsSorted(desc.Kvs, func(i, j int) bool { return string(desc.Kvs[i].Key) > string(desc.Kvs[j].Key) }))
	assert.Equal(t, fmt.Sprintf("dir/%05d", n-1), string(desc.Kvs[0].Key))
	byMod, err := c.ReadDir(ctx, "dir/", etcdgw.WithSort(etcdgw.SortByModRevision, etcdgw.SortDescend))
	require.NoError(t, err)
	assert.Len(t, byMod.Kvs, n, "n-1 old keys and the new one")
}

func TestReadDir15MB(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	val := strings.Repeat("x", 100<<10)
	const n = 150 // 15 MB
	for i := 0; i < n; i += 10 {
		var ops []etcdgw.Op
		for j := i; j < i+10; j++ {
			ops = append(ops, etcdgw.OpPut(fmt.Sprintf("big/%03d", j), fmt.Sprintf("%03d", j)+val))
		}
		_, err := c.Txn(ctx).Then(ops...).Commit()
		require.NoError(t, err)
	}
	r, err := c.ReadDir(ctx, "big/")
	require.NoError(t, err)
	require.Len(t, r.Kvs, n)
	for i, kv := range r.Kvs {
		require.Equal(t, fmt.Sprintf("big/%03d", i), string(kv.Key))
		require.Equal(t, fmt.Sprintf("%03d", i), string(kv.Value[:3]))
		require.Len(t, kv.Value, len(val)+3)
	}
}

func TestConcurrentCallers(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				k := fmt.Sprintf("g%d/%d", g, i)
				if _, err := c.Set(ctx, k, i); err != nil {
					errs <- err
					return
				}
				r, err := c.Get(ctx, k)
				if err != nil {
					errs <- err
					return
				}
				if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != fmt.Sprint(i) {
					errs <- fmt.Errorf("%s: got %v", k, r.Kvs)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Len(t, all.Kvs, 32*20)
}
