package etcdgw_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

// TestRawValue: a RawValue is written and compared as is, whatever the
// serializer: Set, SetNX, SetX, OpPut and Compare of a Value.
func TestRawValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  etcdgw.Option
	}{
		{"JSON", etcdgw.WithSerializer(etcdgw.JSON)},
		{"Raw", etcdgw.WithSerializer(etcdgw.Raw)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := prefixedClient(t, tc.opt)
			ctx := testCtx(t)
			stored := func(key string) string {
				t.Helper()
				r, err := c.Get(ctx, key)
				require.NoError(t, err)
				require.Len(t, r.Kvs, 1)
				return string(r.Kvs[0].Value)
			}

			_, err := c.Set(ctx, "set", etcdgw.RawValue("plain \xff"))
			require.NoError(t, err)
			assert.Equal(t, "plain \xff", stored("set"), "not JSON-encoded, not base64")

			nx, err := c.SetNX(ctx, "nx", etcdgw.RawValue("a"))
			require.NoError(t, err)
			assert.True(t, nx.Succeeded)
			x, err := c.SetX(ctx, "nx", etcdgw.RawValue("b"))
			require.NoError(t, err)
			assert.True(t, x.Succeeded)
			assert.Equal(t, "b", stored("nx"))

			_, err = c.Set(ctx, "empty", etcdgw.RawValue(nil))
			require.NoError(t, err, "a nil RawValue is the empty value, even with Raw")
			assert.Equal(t, "", stored("empty"))

			r, err := c.Txn(ctx).
				If(etcdgw.Compare(etcdgw.Value("set"), "=", etcdgw.RawValue("plain \xff"))).
				Then(etcdgw.OpPut("txn", etcdgw.RawValue("v1"))).
				Commit()
			require.NoError(t, err)
			assert.True(t, r.Succeeded, "the compare took the RawValue as is")
			assert.Equal(t, "v1", stored("txn"))

			r, err = c.Txn(ctx).
				If(etcdgw.Compare(etcdgw.Value("txn"), "=", etcdgw.RawValue(`"v1"`))).
				Then(etcdgw.OpPut("txn", etcdgw.RawValue("v2"))).
				Commit()
			require.NoError(t, err)
			assert.False(t, r.Succeeded, "a RawValue is not serialized")
			assert.Equal(t, "v1", stored("txn"))
		})
	}
}
