package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func captured(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "captured", name))
	require.NoError(t, err)
	return b
}

func TestDecodeRangeCaptured(t *testing.T) {
	var r RangeResponse
	require.NoError(t, DecodeRange(captured(t, "range-hit.200.json"), nil, &r))
	assert.Equal(t, int64(3), r.Header.Revision)
	assert.Equal(t, uint64(2), r.Header.RaftTerm)
	assert.NotZero(t, r.Header.ClusterID)
	assert.NotZero(t, r.Header.MemberID)
	require.Len(t, r.Kvs, 1)
	assert.Equal(t, "foo", string(r.Kvs[0].Key))
	assert.Equal(t, "baz", string(r.Kvs[0].Value))
	assert.Equal(t, int64(2), r.Kvs[0].CreateRevision)
	assert.Equal(t, int64(3), r.Kvs[0].ModRevision)
	assert.Equal(t, int64(2), r.Kvs[0].Version)
	assert.Equal(t, int64(1), r.Count)
	assert.False(t, r.More)

	r = RangeResponse{}
	require.NoError(t, DecodeRange(captured(t, "range-miss.200.json"), nil, &r))
	assert.Empty(t, r.Kvs)
	assert.Zero(t, r.Count)
	assert.Equal(t, int64(3), r.Header.Revision)

	r = RangeResponse{}
	require.NoError(t, DecodeRange(captured(t, "range-limit-more.200.json"), nil, &r))
	assert.Len(t, r.Kvs, 2)
	assert.True(t, r.More)
	assert.Equal(t, int64(5), r.Count)

	r = RangeResponse{}
	require.NoError(t, DecodeRange(captured(t, "range-count-only.200.json"), nil, &r))
	assert.Empty(t, r.Kvs)
	assert.Equal(t, int64(5), r.Count)

	r = RangeResponse{}
	require.NoError(t, DecodeRange(captured(t, "range-keys-only.200.json"), nil, &r))
	require.Len(t, r.Kvs, 5)
	assert.Equal(t, "dir/k4", string(r.Kvs[0].Key))
	assert.Nil(t, r.Kvs[0].Value)

	r = RangeResponse{}
	require.NoError(t, DecodeRange(captured(t, "range-prefix.200.json"), nil, &r))
	require.Len(t, r.Kvs, 5)
	for i, kv := range r.Kvs {
		assert.Equal(t, "dir/k"+string(rune('0'+i)), string(kv.Key))
		assert.Equal(t, `{"n":`+string(rune('0'+i))+`}`, string(kv.Value))
	}
}

func TestDecodePutDeleteTxnCaptured(t *testing.T) {
	var p PutResponse
	require.NoError(t, DecodePut(captured(t, "put-prevkv.200.json"), nil, &p))
	require.NotNil(t, p.PrevKv)
	assert.Equal(t, "bar", string(p.PrevKv.Value))
	assert.Equal(t, int64(3), p.Header.Revision)

	p = PutResponse{}
	require.NoError(t, DecodePut(captured(t, "put.200.json"), nil, &p))
	assert.Nil(t, p.PrevKv)

	var d DeleteRangeResponse
	require.NoError(t, DecodeDeleteRange(captured(t, "delete-prevkv.200.json"), nil, &d))
	assert.Equal(t, int64(1), d.Deleted)
	require.Len(t, d.PrevKvs, 1)
	assert.Equal(t, "dir/k4", string(d.PrevKvs[0].Key))

	d = DeleteRangeResponse{}
	require.NoError(t, DecodeDeleteRange(captured(t, "delete-none.200.json"), nil, &d))
	assert.Zero(t, d.Deleted)

	var x TxnResponse
	require.NoError(t, DecodeTxn(captured(t, "txn-success.200.json"), nil, &x))
	assert.True(t, x.Succeeded)
	require.Len(t, x.Responses, 4)
	require.NotNil(t, x.Responses[0].Put)
	assert.Equal(t, "baz", string(x.Responses[0].Put.PrevKv.Value))
	assert.Equal(t, x.Header.Revision, x.Responses[0].Put.Header.Revision)
	assert.Zero(t, x.Responses[0].Put.Header.ClusterID, "nested headers carry only the revision")
	require.NotNil(t, x.Responses[1].Range)
	assert.Equal(t, "qux", string(x.Responses[1].Range.Kvs[0].Value))
	require.NotNil(t, x.Responses[2].Delete)
	require.NotNil(t, x.Responses[3].Txn)
	assert.True(t, x.Responses[3].Txn.Succeeded)
	require.Len(t, x.Responses[3].Txn.Responses, 1)
	assert.NotNil(t, x.Responses[3].Txn.Responses[0].Put)

	x = TxnResponse{}
	require.NoError(t, DecodeTxn(captured(t, "txn-failure.200.json"), nil, &x))
	assert.False(t, x.Succeeded)
	require.Len(t, x.Responses, 1)
	assert.Equal(t, "qux", string(x.Responses[0].Range.Kvs[0].Value))
}

func TestDecodeLeaseCaptured(t *testing.T) {
	var l LeaseResponse
	require.NoError(t, DecodeLease(captured(t, "lease-grant.200.json"), &l))
	assert.Equal(t, int64(1000), l.ID)
	assert.Equal(t, int64(60), l.TTL)

	l = LeaseResponse{}
	require.NoError(t, DecodeLease(captured(t, "lease-timetolive-keys.200.json"), &l))
	assert.Equal(t, int64(60), l.GrantedTTL)
	assert.Equal(t, [][]byte{[]byte("leased")}, l.Keys)

	l = LeaseResponse{}
	require.NoError(t, DecodeLease(captured(t, "lease-timetolive-missing.200.json"), &l))
	assert.Equal(t, int64(-1), l.TTL)

	var ls LeaseLeasesResponse
	require.NoError(t, DecodeLeases(captured(t, "lease-leases.200.json"), &ls))
	assert.Equal(t, []int64{1000}, ls.Leases)

	l = LeaseResponse{}
	st, err := DecodeLeaseLine(bytes.TrimSpace(captured(t, "lease-keepalive.200.json")), &l)
	require.NoError(t, err)
	assert.Nil(t, st)
	assert.Equal(t, int64(60), l.TTL)

	l = LeaseResponse{}
	st, err = DecodeLeaseLine(bytes.TrimSpace(captured(t, "lease-keepalive-missing.200.json")), &l)
	require.NoError(t, err)
	assert.Nil(t, st)
	assert.Equal(t, int64(999), l.ID)
	assert.Zero(t, l.TTL, "a gone lease has no TTL")

	var v VersionResponse
	require.NoError(t, DecodeVersion(captured(t, "version.200.json"), &v))
	assert.Equal(t, VersionResponse{"3.7.3", "3.7.0", "3.7.0"}, v)

	var h HealthResponse
	require.NoError(t, DecodeHealth(captured(t, "health.200.json"), &h))
	assert.Equal(t, "true", h.Health)
}

func watchLines(t *testing.T, name string) []WatchResponse {
	t.Helper()
	var out []WatchResponse
	lr := NewLineReader(bytes.NewReader(captured(t, name)), 64, 0)
	for {
		line, err := lr.Next()
		if err != nil {
			break
		}
		var r WatchResponse
		st, err := DecodeWatchLine(line, nil, &r)
		require.NoError(t, err)
		require.Nil(t, st)
		out = append(out, r)
	}
	return out
}

func TestDecodeWatchCaptured(t *testing.T) {
	rs := watchLines(t, "watch-events.200.ndjson")
	require.Len(t, rs, 4)
	assert.True(t, rs[0].Created)
	assert.Empty(t, rs[0].Events)
	require.Len(t, rs[1].Events, 1)
	assert.Equal(t, mvccpb.PUT, rs[1].Events[0].Type)
	assert.Equal(t, "1", string(rs[1].Events[0].Kv.Value))
	assert.Nil(t, rs[1].Events[0].PrevKv)
	assert.Equal(t, "1", string(rs[2].Events[0].PrevKv.Value))
	assert.Equal(t, "2", string(rs[2].Events[0].Kv.Value))
	assert.Equal(t, mvccpb.DELETE, rs[3].Events[0].Type)
	assert.Equal(t, "w", string(rs[3].Events[0].Kv.Key))
	assert.Equal(t, rs[3].Header.Revision, rs[3].Events[0].Kv.ModRevision)

	rs = watchLines(t, "watch-compacted.200.ndjson")
	require.Len(t, rs, 2)
	assert.True(t, rs[1].Canceled)
	assert.Equal(t, int64(5), rs[1].CompactRevision)
	assert.Zero(t, rs[1].Header.Revision)

	rs = watchLines(t, "watch-history.200.ndjson")
	assert.Equal(t, int64(7), rs[0].WatchID)
	assert.Equal(t, int64(7), rs[1].WatchID)
	assert.NotEmpty(t, rs[1].Events)

	rs = watchLines(t, "watch-bad-start.200.ndjson")
	assert.True(t, rs[0].Created && rs[0].Canceled)
	assert.Equal(t, int64(-1), rs[0].WatchID)
	assert.Contains(t, rs[0].CancelReason, "compacted")

	rs = watchLines(t, "watch-fragment.200.ndjson")
	require.Len(t, rs, 2)
	require.Len(t, rs[1].Events, 3)
	assert.Len(t, rs[1].Events[2].Kv.Value, 40*1024)
}

// TestDecodeQuirks covers what the versions of the gateway do differently:
// protojson's random spaces, numbers as numbers, null, unknown fields, escapes,
// reordered members.
func TestDecodeQuirks(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want RangeResponse
	}{
		{"3.7 spaces", `{"header":{"cluster_id":"2662884697506282631", "member_id":"669505362762724568", "revision":"3", "raft_term":"2"}, "kvs":[{"key":"Zm9v", "create_revision":"2", "mod_revision":"3", "version":"2", "value":"YmF6"}], "count":"1"}`,
			RangeResponse{Header: Header{2662884697506282631, 669505362762724568, 3, 2}, Kvs: []*mvccpb.KeyValue{{Key: []byte("foo"), Value: []byte("baz"), CreateRevision: 2, ModRevision: 3, Version: 2}}, Count: 1}},
		{"numbers", `{"header":{"revision":3,"cluster_id":18446744073709551615},"count":1,"more":true}`,
			RangeResponse{Header: Header{ClusterID: math.MaxUint64, Revision: 3}, Count: 1, More: true}},
		{"exponent", `{"header":{"revision":1e1},"count":"2E0"}`, RangeResponse{Header: Header{Revision: 10}, Count: 2}},
		{"nulls", `{"header":null,"kvs":null,"count":null,"more":null}`, RangeResponse{}},
		{"empty header", `{"header":{}}`, RangeResponse{}},
		{"unknown fields", `{"x":{"a":[1,{"b":"c"}],"d":null},"header":{"revision":"4","new":true},"kvs":[{"key":"YQ==","extra":[]}],"y":-1.5e3}`,
			RangeResponse{Header: Header{Revision: 4}, Kvs: []*mvccpb.KeyValue{{Key: []byte("a")}}}},
		{"reordered", `{"count":"1","kvs":[{"value":"dg==","key":"aw=="}],"header":{"revision":"9"}}`,
			RangeResponse{Header: Header{Revision: 9}, Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: []byte("v")}}, Count: 1}},
		{"escaped", `{"he\u0061der":{"revision":"\u0035"},"kvs":[{"key":"a2V5\/"}]}`, RangeResponse{}},
		{"whitespace", " \r\n\t{ \"count\" :\t\"7\" , \"kvs\" : [ ] } \n", RangeResponse{Count: 7}},
		{"negative", `{"header":{"revision":"-9223372036854775808"}}`, RangeResponse{Header: Header{Revision: math.MinInt64}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got RangeResponse
			err := DecodeRange([]byte(tc.in), nil, &got)
			if tc.name == "escaped" {
				// "a2V5/" is not valid base64: escapes are read, and the value is refused.
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want.Header, got.Header)
			assert.Equal(t, tc.want.Count, got.Count)
			assert.Equal(t, tc.want.More, got.More)
			require.Len(t, got.Kvs, len(tc.want.Kvs))
			for i := range got.Kvs {
				assert.Equal(t, tc.want.Kvs[i].String(), got.Kvs[i].String())
			}
		})
	}
}

func TestDecodeEscapes(t *testing.T) {
	var l LeaseResponse
	require.NoError(t, DecodeLease([]byte(`{"error":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800x\u003c"}`), &l))
	assert.Equal(t, "a\"b\\c/d\né😀\uFFFDx<", l.Error)
	var r RangeResponse
	require.NoError(t, DecodeRange([]byte(`{"kvs":[{"key":"Zm\u0039v"}]}`), nil, &r))
	assert.Equal(t, "foo", string(r.Kvs[0].Key))
}

func TestDecodeRejects(t *testing.T) {
	bad := []string{
		``, ` `, `[]`, `"x"`, `{`, `{"header"`, `{"header":`, `{"header":{}`, `{"header":{},}`,
		`{,"count":"1"}`, `{"count":"1",}`, `{"count" "1"}`, `{"count":"1"}{}`, `{"count":"1"} x`,
		`{"count":"x"}`, `{"count":"1.5"}`, `{"count":"99999999999999999999"}`, `{"count":true}`,
		`{"count":"9223372036854775808"}`, `{"more":"true"}`, `{"more":tru}`,
		`{"kvs":{}}`, `{"kvs":[1]}`, `{"kvs":[{"key":"Zm9"}]}`, `{"kvs":[{"key":"Zm9v!"}]}`,
		`{"kvs":[{"key":"Zm=v"}]}`, `{"kvs":[{"key":"Zm9vYg="}]}`, `{"kvs":[{"key":"Zh=="}]}`,
		`{"kvs":[{"key":"Zm9=="}]}`, "{\"kvs\":[{\"key\":\"Zm9v\n\"}]}", `{"x":"\q"}`, `{"x":"\u12"}`,
		`{"x":"abc`, `{"x":[1,2}`, `{"x":{"a"}}`, `{"x":-}`, `{"x":nul}`, `{"x":}`,
		`{"header":{"revision":"1"},"header":[]}`, strings.Repeat(`{"x":[`, 200) + strings.Repeat(`]}`, 200),
	}
	for _, in := range bad {
		var r RangeResponse
		err := DecodeRange([]byte(in), nil, &r)
		var se *SyntaxError
		assert.True(t, errors.As(err, &se), "input %q: got %v, want a *SyntaxError", in, err)
	}
}

// TestDecodeTruncated cuts every captured answer at every byte: each prefix is
// an error, never a panic and never a silent partial value.
func TestDecodeTruncated(t *testing.T) {
	files, err := filepath.Glob("testdata/captured/*")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.HasSuffix(f, ".ndjson") || bytes.HasPrefix(data, []byte(`{"result"`)) {
			line, _, _ := bytes.Cut(data, []byte("\n"))
			for i := 0; i < len(line); i++ {
				var r WatchResponse
				_, err := DecodeWatchLine(line[:i], nil, &r)
				require.Error(t, err, "%s cut at %d", f, i)
			}
			continue
		}
		if len(data) > 4096 {
			data = data[:4096]
		}
		for i := 0; i < len(bytes.TrimSpace(data)); i++ {
			var r TxnResponse
			require.Error(t, DecodeTxn(data[:i], nil, &r), "%s cut at %d", f, i)
			var st = ParseErrorBody(400, data[:i])
			require.NotEqual(t, -1, st.Code)
		}
	}
}

func TestBase64(t *testing.T) {
	for n := 0; n < 200; n++ {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*131 + n*7)
		}
		enc := []byte(base64.StdEncoding.EncodeToString(src))
		require.Equal(t, n, decodedLen(enc))
		dst := make([]byte, n)
		require.True(t, decodeBase64(dst, enc), "n=%d", n)
		require.Equal(t, src, dst, "n=%d", n)
	}
	for _, bad := range []string{"A===", "AB=A", "Zm9v!A==", "Zh==", "Zm9=", "====", "-_-_", "Zm9v\nA=="} {
		if n := decodedLen([]byte(bad)); n >= 0 {
			dst := make([]byte, n)
			assert.False(t, decodeBase64(dst, []byte(bad)), bad)
		}
	}
}

func TestLineReader(t *testing.T) {
	a := `{"result":{"created":true}}`
	b := `{"result":{"header":{"revision":"2"}}}`
	stream := a + "\n" + "\n" + " \n" + b + "\n" + `{"error":{"grpc_code":14,"message":"x"}}`
	readers := map[string]func() *LineReader{
		"one chunk":   func() *LineReader { return NewLineReader(strings.NewReader(stream), 4096, 0) },
		"byte chunks": func() *LineReader { return NewLineReader(iotestOneByte(strings.NewReader(stream)), 1, 0) },
		"small buf":   func() *LineReader { return NewLineReader(strings.NewReader(stream), 8, 0) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			lr := mk()
			var got []string
			for {
				line, err := lr.Next()
				if err != nil {
					require.Equal(t, "EOF", err.Error())
					break
				}
				got = append(got, string(line))
			}
			assert.Equal(t, []string{a, b, `{"error":{"grpc_code":14,"message":"x"}}`}, got)
		})
	}
	lr := NewLineReader(strings.NewReader(strings.Repeat("x", 5000)+"\n"), 16, 1000)
	_, err := lr.Next()
	assert.ErrorIs(t, err, ErrLineTooLong)
	// Also when the whole line, newline included, came in one read.
	lr = NewLineReader(strings.NewReader(strings.Repeat("x", 5000)+"\n"), 8192, 1000)
	_, err = lr.Next()
	assert.ErrorIs(t, err, ErrLineTooLong)
	_, err = lr.Next()
	assert.ErrorIs(t, err, ErrLineTooLong, "and it stays an error")
	big := strings.Repeat("y", 4<<20)
	lr = NewLineReader(strings.NewReader(big+"\nz\n"), 512, 0)
	line, err := lr.Next()
	require.NoError(t, err)
	assert.Len(t, line, 4<<20)
	line, err = lr.Next()
	require.NoError(t, err)
	assert.Equal(t, "z", string(line))
}

type oneByteReader struct{ r *strings.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func iotestOneByte(r *strings.Reader) oneByteReader { return oneByteReader{r} }

func TestDecodeWatchStreamErrors(t *testing.T) {
	cases := []struct {
		line string
		want Status
	}{
		{`{"error":{"grpc_code":14,"http_code":503,"message":"error reading from server: EOF","http_status":"Service Unavailable"}}`,
			Status{Code: 14, HTTPStatus: 503, Message: "error reading from server: EOF"}},
		{`{"error":{"code":16,"message":"etcdserver: invalid auth token"}}`,
			Status{Code: 16, Message: "etcdserver: invalid auth token"}},
		{`{"error":{"code":4,"message":"context deadline exceeded","details":[]}}`,
			Status{Code: 4, Message: "context deadline exceeded"}},
	}
	for _, tc := range cases {
		var r WatchResponse
		st, err := DecodeWatchLine([]byte(tc.line), nil, &r)
		require.NoError(t, err)
		require.NotNil(t, st)
		assert.Equal(t, tc.want, *st)
	}
	var r WatchResponse
	_, err := DecodeWatchLine([]byte(`{"nothing":1}`), nil, &r)
	assert.Error(t, err)
}

func TestParseErrorBody(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   Status
		kind   Kind
	}{
		{"3.3", 400, `{"error":"etcdserver: mvcc: required revision has been compacted","code":11}`, Status{11, 400, "etcdserver: mvcc: required revision has been compacted"}, KindCompacted},
		{"3.4.0-3.4.22", 400, `{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}`, Status{3, 400, "etcdserver: key is not provided"}, KindKeyNotProvided},
		{"3.5", 404, `{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}`, Status{5, 404, "etcdserver: requested lease not found"}, KindLeaseNotFound},
		{"3.6", 401, `{"code":16,"message":"etcdserver: invalid auth token","details":[]}`, Status{16, 401, "etcdserver: invalid auth token"}, KindInvalidAuthToken},
		{"3.7 spaces", 400, `{"code":3, "message":"etcdserver: too many operations in txn request"}`, Status{3, 400, "etcdserver: too many operations in txn request"}, KindTooManyOps},
		{"grpc limit", 429, `{"code":8,"message":"grpc: received message larger than max (2600011 vs. 2097152)"}`, Status{8, 429, "grpc: received message larger than max (2600011 vs. 2097152)"}, KindRequestTooLarge},
		{"nospace", 429, `{"error":"etcdserver: mvcc: database space exceeded","code":8}`, Status{8, 429, "etcdserver: mvcc: database space exceeded"}, KindNoSpace},
		{"no leader", 503, `{"code":14,"message":"etcdserver: no leader"}`, Status{14, 503, "etcdserver: no leader"}, KindNoLeader},
		{"leader changed", 503, `{"code":14,"message":"etcdserver: leader changed"}`, Status{14, 503, "etcdserver: leader changed"}, KindUnavailable},
		{"text 404", 404, "404 page not found\n", Status{5, 404, "404 page not found"}, KindNotFound},
		{"text 405", 405, "Method Not Allowed", Status{12, 405, "Method Not Allowed"}, KindUnimplemented},
		{"empty 503", 503, "", Status{14, 503, ""}, KindUnavailable},
		{"garbage", 500, "{not json", Status{2, 500, "{not json"}, KindOther},
		{"stream shape", 401, `{"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token","http_status":"Unauthorized"}}`, Status{16, 401, "etcdserver: invalid auth token"}, KindInvalidAuthToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseErrorBody(tc.status, []byte(tc.body))
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.kind, Classify(got.Code, got.Message))
		})
	}
	for _, f := range []string{"err-compacted.400.json", "err-future-rev.400.json", "err-lease-not-found.404.json", "err-key-not-provided.400.json", "err-too-many-ops.400.json", "err-request-too-large.400.json", "err-grpc-too-large.429.json", "err-duplicate-key.400.json", "err-ttl-too-large.400.json", "err-lease-exists.400.json", "err-auth-not-enabled.400.json"} {
		st := ParseErrorBody(400, captured(t, f))
		assert.NotEqual(t, KindOther, Classify(st.Code, st.Message), f)
	}
}

// TestDecodeAbsurdAnswers runs every decoder on answers no etcd sends: none
// panics, and a count, however large, sizes nothing.
func TestDecodeAbsurdAnswers(t *testing.T) {
	for _, data := range absurdAnswers {
		var a Arena
		_ = DecodeRange([]byte(data), &a, new(RangeResponse))
		_ = DecodePut([]byte(data), &a, new(PutResponse))
		_ = DecodeDeleteRange([]byte(data), &a, new(DeleteRangeResponse))
		_ = DecodeTxn([]byte(data), &a, new(TxnResponse))
		_ = DecodeLease([]byte(data), new(LeaseResponse))
		_ = DecodeLeases([]byte(data), new(LeaseLeasesResponse))
		_, _ = DecodeWatchLine([]byte(data), &a, new(WatchResponse))
		st := ParseErrorBody(500, []byte(data))
		_ = Classify(st.Code, st.Message)
	}

	huge := []byte(absurdAnswers[0])
	var r RangeResponse
	if err := DecodeRange(huge, nil, &r); err != nil {
		t.Fatal(err)
	}
	if r.Count != math.MaxInt64 || len(r.Kvs) != 1 {
		t.Fatalf("count %d, %d kvs", r.Count, len(r.Kvs))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		var r RangeResponse
		_ = DecodeRange(huge, nil, &r)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4096 {
		t.Errorf("decoding a range answer of one key allocates %d bytes", per)
	}
}
