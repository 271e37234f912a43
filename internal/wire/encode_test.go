package wire

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeRequests(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"range minimal", AppendRange(nil, &RangeRequest{Key: []byte("foo")}), `{"key":"Zm9v"}`},
		{"range full", AppendRange(nil, &RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), Limit: 10, Revision: math.MaxInt64,
			SortOrder: SortDescend, SortTarget: SortByMod, Serializable: true, KeysOnly: true, CountOnly: true,
			MinModRevision: 1, MaxModRevision: 2, MinCreateRevision: 3, MaxCreateRevision: 4}),
			`{"key":"YQ==","range_end":"Yg==","limit":"10","revision":"9223372036854775807","sort_order":"DESCEND","sort_target":"MOD","serializable":true,"keys_only":true,"count_only":true,"min_mod_revision":"1","max_mod_revision":"2","min_create_revision":"3","max_create_revision":"4"}`},
		{"put", AppendPut(nil, &PutRequest{Key: []byte("k"), Value: []byte{0xff, 0}, Lease: 7, PrevKV: true}),
			`{"key":"aw==","value":"/wA=","lease":"7","prev_kv":true}`},
		{"put ignore", AppendPut(nil, &PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true}),
			`{"key":"aw==","ignore_value":true,"ignore_lease":true}`},
		{"delete", AppendDeleteRange(nil, &DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, PrevKV: true}),
			`{"key":"AA==","range_end":"AA==","prev_kv":true}`},
		{"txn", AppendTxn(nil, &TxnRequest{
			Compare: []Compare{
				{Result: CompareEqual, Target: TargetCreate, Key: []byte("k")},
				{Result: CompareNotEqual, Target: TargetValue, Key: []byte("k"), Value: []byte("v")},
				{Result: CompareLess, Target: TargetLease, Key: []byte("k"), RangeEnd: []byte("l"), Number: 5},
			},
			Success: []RequestOp{{Put: &PutRequest{Key: []byte("k"), Value: []byte("v")}}, {Txn: &TxnRequest{Failure: []RequestOp{{Range: &RangeRequest{Key: []byte("x")}}}}}},
			Failure: []RequestOp{{Delete: &DeleteRangeRequest{Key: []byte("k")}}},
		}),
			`{"compare":[{"result":"EQUAL","target":"CREATE","key":"aw==","create_revision":"0"},{"result":"NOT_EQUAL","target":"VALUE","key":"aw==","value":"dg=="},{"result":"LESS","target":"LEASE","key":"aw==","range_end":"bA==","lease":"5"}],` +
				`"success":[{"request_put":{"key":"aw==","value":"dg=="}},{"request_txn":{"failure":[{"request_range":{"key":"eA=="}}]}}],"failure":[{"request_delete_range":{"key":"aw=="}}]}`},
		{"empty txn", AppendTxn(nil, &TxnRequest{}), `{}`},
		{"empty value compare", AppendTxn(nil, &TxnRequest{Compare: []Compare{{Target: TargetValue, Key: []byte("k")}}}),
			`{"compare":[{"result":"EQUAL","target":"VALUE","key":"aw==","value":""}]}`},
		{"compaction", AppendCompaction(nil, 42, true), `{"revision":"42","physical":true}`},
		{"watch", AppendWatchCreate(nil, &WatchCreateRequest{Key: []byte("w"), RangeEnd: []byte("x"), StartRevision: 3, ProgressNotify: true, FilterPut: true, FilterDelete: true, PrevKV: true, WatchID: 9, Fragment: true}),
			`{"create_request":{"key":"dw==","range_end":"eA==","start_revision":"3","progress_notify":true,"filters":["NOPUT","NODELETE"],"prev_kv":true,"watch_id":"9","fragment":true}}`},
		{"watch delete filter", AppendWatchCreate(nil, &WatchCreateRequest{Key: []byte("w"), FilterDelete: true}), `{"create_request":{"key":"dw==","filters":["NODELETE"]}}`},
		{"watch cancel", AppendWatchCancel(nil, 5), `{"cancel_request":{"watch_id":"5"}}`},
		{"progress", AppendWatchProgress(nil), `{"progress_request":{}}`},
		{"grant", AppendLeaseGrant(nil, 30, 0), `{"TTL":"30"}`},
		{"grant id", AppendLeaseGrant(nil, 30, 1000), `{"TTL":"30","ID":"1000"}`},
		{"lease id", AppendLeaseID(nil, -1), `{"ID":"-1"}`},
		{"ttl", AppendLeaseTimeToLive(nil, 1, true), `{"ID":"1","keys":true}`},
		{"auth", AppendAuthenticate(nil, "r\"oot", "p\\w\n\x01\xff"), `{"name":"r\"oot","password":"p\\w\n\u0001\ufffd"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, string(tc.got))
			assert.True(t, json.Valid(tc.got), "not valid JSON: %s", tc.got)
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "ctl\x00\x1f\t\r\n", "utf8 é 😀", "bad \xff\xfe utf8", "<html>&"} {
		var back string
		require.NoError(t, json.Unmarshal(AppendString(nil, s), &back), s)
		want, _ := json.Marshal(s)
		var wantBack string
		require.NoError(t, json.Unmarshal(want, &wantBack))
		assert.Equal(t, wantBack, back, s)
	}
}
