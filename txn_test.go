package etcdgw_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

func TestTxnCompareTargetsAndResults(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	first, err := c.Set(ctx, "k", "v1", etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	second, err := c.Set(ctx, "k", "v2", etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	created, modified := first.Header.Revision, second.Header.Revision

	// k now has value "v2", version 2, create revision `created`, mod
	// revision `modified` and lease g.ID.
	cases := []struct {
		name string
		cmp  etcdgw.Cmp
		want bool
	}{
		{"value =", etcdgw.Compare(etcdgw.Value("k"), "=", "v2"), true},
		{"value = old", etcdgw.Compare(etcdgw.Value("k"), "=", "v1"), false},
		{"value !=", etcdgw.Compare(etcdgw.Value("k"), "!=", "v1"), true},
		{"value <", etcdgw.Compare(etcdgw.Value("k"), "<", "v3"), true},
		{"value >", etcdgw.Compare(etcdgw.Value("k"), ">", "v3"), false},
		{"version =", etcdgw.Compare(etcdgw.Version("k"), "=", 2), true},
		{"version >", etcdgw.Compare(etcdgw.Version("k"), ">", 2), false},
		{"version < (int32)", etcdgw.Compare(etcdgw.Version("k"), "<", int32(3)), true},
		{"create =", etcdgw.Compare(etcdgw.CreateRevision("k"), "=", created), true},
		{"create !=", etcdgw.Compare(etcdgw.CreateRevision("k"), "!=", created), false},
		{"mod =", etcdgw.Compare(etcdgw.ModRevision("k"), "=", modified), true},
		{"mod <", etcdgw.Compare(etcdgw.ModRevision("k"), "<", modified), false},
		{"mod > (uint64)", etcdgw.Compare(etcdgw.ModRevision("k"), ">", uint64(created)), true},
		{"lease =", etcdgw.Compare(etcdgw.LeaseValue("k"), "=", g.ID), true},
		{"lease !=", etcdgw.Compare(etcdgw.LeaseValue("k"), "!=", g.ID), false},
		{"absent key's create = 0", etcdgw.Compare(etcdgw.CreateRevision("none"), "=", 0), true},
		{"absent key's version > 0", etcdgw.Compare(etcdgw.Version("none"), ">", 0), false},
		{"prefix: every key's version > 0", etcdgw.Compare(etcdgw.Version("k"), ">", 0).WithPrefix(), true},
		{"range [k, l): version = 2", etcdgw.Compare(etcdgw.Version("k"), "=", 2).WithRange("l"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Txn(ctx).If(tc.cmp).Then(etcdgw.OpGet("k")).Else(etcdgw.OpGet("k"), etcdgw.OpGet("none")).Commit()
			require.NoError(t, err)
			assert.Equal(t, tc.want, r.Succeeded)
			if tc.want {
				require.Len(t, r.Responses, 1, "the Then branch ran")
			} else {
				require.Len(t, r.Responses, 2, "the Else branch ran")
			}
			assert.Equal(t, "k", string(r.Responses[0].Get.Kvs[0].Key), "the key prefix is stripped")
		})
	}
}

func TestTxnResponsesAndNesting(t *testing.T) {
	c, _ := prefixedClient(t)
	raw := newClient(t, etcdgw.WithEndpoints(shared.Endpoint()))
	ctx := testCtx(t)
	_, err := c.Set(ctx, "a", 1)
	require.NoError(t, err)
	_, err = c.Set(ctx, "d/1", 1)
	require.NoError(t, err)
	_, err = c.Set(ctx, "d/2", 2)
	require.NoError(t, err)

	r, err := c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.Value("a"), "=", 1)).
		Then(
			etcdgw.OpPut("a", 2, etcdgw.WithPrevKV()),
			etcdgw.OpDelete("d/", etcdgw.WithPrefix(), etcdgw.WithPrevKV()),
			etcdgw.OpTxn(
				[]etcdgw.Cmp{etcdgw.Compare(etcdgw.Version("n"), "=", 0)},
				[]etcdgw.Op{etcdgw.OpPut("n", "nested"), etcdgw.OpGet("a")},
				[]etcdgw.Op{etcdgw.OpGet("n")},
			),
		).
		Commit()
	require.NoError(t, err)
	require.True(t, r.Succeeded)
	require.Len(t, r.Responses, 3)

	put := r.Responses[0].Put
	require.NotNil(t, put)
	assert.Equal(t, "a", string(put.PrevKv.Key))
	assert.Equal(t, "1", string(put.PrevKv.Value))

	del := r.Responses[1].Delete
	require.NotNil(t, del)
	assert.Equal(t, int64(2), del.Deleted)
	require.Len(t, del.PrevKvs, 2)
	assert.Equal(t, "d/1", string(del.PrevKvs[0].Key))
	assert.Equal(t, "d/2", string(del.PrevKvs[1].Key))

	nested := r.Responses[2].Txn
	require.NotNil(t, nested)
	assert.True(t, nested.Succeeded)
	require.Len(t, nested.Responses, 2)
	require.NotNil(t, nested.Responses[0].Put)
	got := nested.Responses[1].Get
	require.NotNil(t, got)
	assert.Equal(t, "a", string(got.Kvs[0].Key), "stripped inside a nested txn too")
	assert.Equal(t, "2", string(got.Kvs[0].Value), "the nested txn sees the outer put")

	// The key prefix applied inside: the nested put wrote prefix+"n", and
	// the delete removed only the prefixed directory.
	n, err := c.Get(ctx, "n")
	require.NoError(t, err)
	require.Len(t, n.Kvs, 1)
	assert.Equal(t, `"nested"`, string(n.Kvs[0].Value), "values go through the serializer")
	unprefixed, err := raw.Get(ctx, "n")
	require.NoError(t, err)
	assert.Empty(t, unprefixed.Kvs)
}

func TestTxnReadOnlyAndElse(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	r, err := c.Txn(ctx).Commit()
	require.NoError(t, err, "an empty transaction is valid")
	assert.True(t, r.Succeeded)
	assert.Empty(t, r.Responses)

	r, err = c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.Value("missing"), "=", "x")).
		Then(etcdgw.OpPut("then", 1)).
		Else(etcdgw.OpPut("else", 1)).
		Commit()
	require.NoError(t, err)
	assert.False(t, r.Succeeded, "a value compare on an absent key fails")
	for _, k := range []string{"then", "else"} {
		g, err := c.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, k == "else", len(g.Kvs) == 1, k)
	}
}

func TestTxnBadInputSendsNothing(t *testing.T) {
	var calls atomic.Int32
	counted := func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(200, `{}`)(w, r)
	}
	c, _ := fakeGateway(t, counted)
	rawc, _ := fakeGateway(t, counted, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	cases := map[string]*etcdgw.Txn{
		"no Compare":        c.Txn(ctx).If(etcdgw.Value("k")),
		"unknown operator":  c.Txn(ctx).If(etcdgw.Compare(etcdgw.Version("k"), "<=", 1)),
		"not an integer":    c.Txn(ctx).If(etcdgw.Compare(etcdgw.Version("k"), "=", "1")),
		"uint64 overflow":   c.Txn(ctx).If(etcdgw.Compare(etcdgw.ModRevision("k"), "=", uint64(1<<63))),
		"If after Then":     c.Txn(ctx).Then(etcdgw.OpGet("k")).If(etcdgw.Compare(etcdgw.Version("k"), "=", 1)),
		"Then after Else":   c.Txn(ctx).Else(etcdgw.OpGet("k")).Then(etcdgw.OpGet("k")),
		"raw value refused": rawc.Txn(ctx).Then(etcdgw.OpPut("k", 42)),
		"raw operand":       rawc.Txn(ctx).If(etcdgw.Compare(etcdgw.Value("k"), "=", 42)),
	}
	for name, txn := range cases {
		_, err := txn.Commit()
		assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument, name)
	}
	for name, txn := range map[string]*etcdgw.Txn{
		"empty key in a compare": c.Txn(ctx).If(etcdgw.Compare(etcdgw.Version(""), "=", 1)),
		"empty key in an op":     c.Txn(ctx).Then(etcdgw.OpPut("", 1)),
	} {
		_, err := txn.Commit()
		assert.ErrorIs(t, err, etcdgw.ErrKeyNotProvided, name)
	}
	assert.Zero(t, calls.Load(), "nothing was sent")
}
