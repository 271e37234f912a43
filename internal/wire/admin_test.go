package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdminEncoders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"member list", AppendMemberList(nil, true), `{"linearizable":true}`},
		{"member add", AppendMemberAdd(nil, []string{"http://a:1", "http://b:2"}, true), `{"peerURLs":["http://a:1","http://b:2"],"isLearner":true}`},
		{"member add voter", AppendMemberAdd(nil, []string{"http://a:1"}, false), `{"peerURLs":["http://a:1"]}`},
		{"member id", AppendMemberID(nil, 18446744073709551615), `{"ID":"18446744073709551615"}`},
		{"member update", AppendMemberUpdate(nil, 7, []string{"http://a:1"}), `{"ID":"7","peerURLs":["http://a:1"]}`},
		{"alarm get", AppendAlarm(nil, AlarmGet, 0, ""), `{}`},
		{"alarm disarm", AppendAlarm(nil, AlarmDeactivate, 9, "NOSPACE"), `{"action":"DEACTIVATE","memberID":"9","alarm":"NOSPACE"}`},
		{"hashkv", AppendHashKV(nil, 0), `{}`},
		{"hashkv rev", AppendHashKV(nil, 12), `{"revision":"12"}`},
		{"move leader", AppendMoveLeader(nil, 5), `{"targetID":"5"}`},
		{"user add", AppendUserAdd(nil, "u\"", "p", false), `{"name":"u\"","password":"p","options":{}}`},
		{"user add no password", AppendUserAdd(nil, "u", "ignored", true), `{"name":"u","options":{"no_password":true}}`},
		{"strings", AppendStrings(nil, "user", "u", "role", "r"), `{"user":"u","role":"r"}`},
		{"role grant", AppendRoleGrant(nil, "r", PermReadWrite, []byte("a"), []byte("b")), `{"name":"r","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}`},
		{"role grant one key", AppendRoleGrant(nil, "r", PermRead, []byte("a"), nil), `{"name":"r","perm":{"permType":"READ","key":"YQ=="}}`},
		{"role revoke", AppendRoleRevoke(nil, "r", []byte("a"), []byte("b")), `{"role":"r","key":"YQ==","range_end":"Yg=="}`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(tt.got), tt.name)
	}
}

func TestDecodeAdmin(t *testing.T) {
	// Answers as etcd 3.7 writes them (locks-cache-admin-study.md §3), with
	// protojson's whitespace.
	var m MemberResponse
	require.NoError(t, DecodeMembers([]byte(`{"header":{"cluster_id":"1","member_id":"2","raft_term":"3"}, "member":{"ID":"10","peerURLs":["http://p:1"],"isLearner":true},`+
		`"members":[{"ID":"11","name":"a","peerURLs":["http://p:2"],"clientURLs":["http://c:2"]},{"ID":"10","peerURLs":["http://p:1"],"isLearner":true}]}`), &m))
	assert.Equal(t, Member{ID: 10, PeerURLs: []string{"http://p:1"}, IsLearner: true}, m.Member)
	assert.Equal(t, []Member{{ID: 11, Name: "a", PeerURLs: []string{"http://p:2"}, ClientURLs: []string{"http://c:2"}}, m.Member}, m.Members)
	assert.Equal(t, uint64(3), m.Header.RaftTerm)

	var s StatusResponse
	require.NoError(t, DecodeStatus([]byte(`{"header":{"member_id":"2","revision":"5"},"version":"3.7.3","dbSize":"942080","leader":"2","raftIndex":"9","raftTerm":"2",`+
		`"raftAppliedIndex":"9","dbSizeInUse":"901120","storageVersion":"3.6.0","dbSizeQuota":"2147483648","downgradeInfo":{},"isLearner":true,"errors":["NOSPACE"]}`), &s))
	assert.Equal(t, StatusResponse{Header: Header{MemberID: 2, Revision: 5}, Version: "3.7.3", StorageVersion: "3.6.0", DBSize: 942080, DBSizeInUse: 901120,
		DBSizeQuota: 2147483648, Leader: 2, RaftIndex: 9, RaftTerm: 2, RaftAppliedIndex: 9, IsLearner: true, Errors: []string{"NOSPACE"}}, s)

	var a AlarmResponse
	require.NoError(t, DecodeAlarm([]byte(`{"header":{},"alarms":[{"memberID":"7","alarm":"NOSPACE"},{"memberID":"8","alarm":2},{"memberID":"9"}]}`), &a))
	assert.Equal(t, []Alarm{{7, "NOSPACE"}, {8, "CORRUPT"}, {9, "NONE"}}, a.Alarms)
	a = AlarmResponse{}
	require.NoError(t, DecodeAlarm([]byte(`{}`), &a), "3.4 with no alarms")
	assert.Empty(t, a.Alarms)

	var h HashKVResponse
	require.NoError(t, DecodeHashKV([]byte(`{"header":{"revision":"4"},"hash":3630160000,"compact_revision":"-1","hash_revision":"4"}`), &h))
	assert.Equal(t, HashKVResponse{Header: Header{Revision: 4}, Hash: 3630160000, CompactRevision: -1, HashRevision: 4}, h)
	assert.Error(t, DecodeHashKV([]byte(`{"hash":4294967296}`), &h), "a hash over 32 bits")

	var as AuthStatusResponse
	require.NoError(t, DecodeAuthStatus([]byte(`{"header":{},"enabled":true,"authRevision":"6"}`), &as))
	assert.Equal(t, AuthStatusResponse{Enabled: true, AuthRevision: 6}, as)

	var r AuthResponse
	require.NoError(t, DecodeAuth([]byte(`{"header":{},"perm":[{"key":"YQ==","range_end":"Yg=="},{"permType":"WRITE","key":"Yw=="},{"permType":2,"key":"ZA=="}]}`), &r))
	assert.Equal(t, []Permission{{PermRead, []byte("a"), []byte("b")}, {PermWrite, []byte("c"), nil}, {PermReadWrite, []byte("d"), nil}}, r.Perms)
	r = AuthResponse{}
	require.NoError(t, DecodeAuth([]byte(`{"header":{},"users":["a","b"]}`), &r))
	assert.Equal(t, []string{"a", "b"}, r.Names)
	assert.Error(t, DecodeAuth([]byte(`{"perm":[{"permType":"ALL"}]}`), &r))
}

func TestDecodeSnapshotLine(t *testing.T) {
	var r SnapshotResponse
	st, err := DecodeSnapshotLine([]byte(`{"result":{"header":{},"remaining_bytes":"909312","blob":"YWJj","version":"3.7.0"}}`), &r)
	require.NoError(t, err)
	assert.Nil(t, st)
	assert.Equal(t, uint64(909312), r.RemainingBytes)
	assert.Equal(t, "abc", string(r.Blob))
	buf := &r.Blob[0]

	// The last message: no remaining_bytes; the buffer is reused.
	st, err = DecodeSnapshotLine([]byte(`{"result":{"blob":"eHk="}}`), &r)
	require.NoError(t, err)
	assert.Nil(t, st)
	assert.Zero(t, r.RemainingBytes)
	assert.Equal(t, "xy", string(r.Blob))
	assert.Same(t, buf, &r.Blob[0])

	for _, line := range []string{
		`{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}`,
		`{"error":{"code":14,"message":"etcdserver: no leader"}}`,
	} {
		st, err = DecodeSnapshotLine([]byte(line), &r)
		require.NoError(t, err)
		require.NotNil(t, st)
		assert.Equal(t, CodeUnavailable, st.Code)
		assert.Equal(t, "etcdserver: no leader", st.Message)
	}
	for _, bad := range []string{`{}`, `{"result":{"blob":"YWJ"}}`, `{"result":{"blob":"!!!!"}}`, `{"result":{"blob":"YWJj"}`, `[]`} {
		_, err = DecodeSnapshotLine([]byte(bad), &r)
		assert.Error(t, err, bad)
	}
}

func TestClassifyAdmin(t *testing.T) {
	tests := []struct {
		msg  string
		want Kind
	}{
		{"etcdserver: member not found", KindMemberNotFound},
		{"etcdserver: member ID already exist", KindMemberExists},
		{"etcdserver: Peer URLs already exists", KindMemberExists},
		{"etcdserver: can only promote a learner member which is in sync with leader", KindLearnerNotReady},
		{"etcdserver: can only promote a learner member", KindMemberNotLearner},
		{"etcdserver: too many learner members in cluster", KindTooManyLearners},
		{"etcdserver: bad leader transferee", KindBadLeaderTransferee},
		{"etcdserver: user name not found", KindUserNotFound},
		{"etcdserver: user name already exists", KindUserExists},
		{"etcdserver: role name not found", KindRoleNotFound},
		{"etcdserver: role name already exists", KindRoleExists},
		{"etcdserver: user name is empty", KindUserEmpty},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Classify(CodeFailedPrecondition, tt.msg), tt.msg)
	}
}

// FuzzDecodeAdmin: no input makes an administration decoder panic or hang.
func FuzzDecodeAdmin(f *testing.F) {
	for _, seed := range []string{
		`{"header":{},"members":[{"ID":"1","name":"a","peerURLs":["x"],"clientURLs":["y"],"isLearner":true}],"member":{"ID":"2"}}`,
		`{"version":"3.7.3","dbSize":"1","leader":"2","errors":["NOSPACE"]}`,
		`{"alarms":[{"memberID":"7","alarm":"NOSPACE"},{"alarm":9}]}`,
		`{"hash":3630160000,"compact_revision":"-1","hash_revision":"4"}`,
		`{"enabled":true,"authRevision":"6"}`,
		`{"perm":[{"permType":"WRITE","key":"YQ==","range_end":"Yg=="}],"users":["a"]}`,
		`{"result":{"remaining_bytes":"9","blob":"YWJj"}}`,
		`{"error":{"code":14,"message":"etcdserver: no leader"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = DecodeMembers(data, new(MemberResponse))
		_ = DecodeStatus(data, new(StatusResponse))
		_ = DecodeAlarm(data, new(AlarmResponse))
		_ = DecodeHashKV(data, new(HashKVResponse))
		_ = DecodeAuthStatus(data, new(AuthStatusResponse))
		_ = DecodeAuth(data, new(AuthResponse))
		var s SnapshotResponse
		if st, err := DecodeSnapshotLine(data, &s); err == nil && st == nil && len(s.Blob) > len(data) {
			t.Fatalf("blob of %d bytes from %d bytes of input", len(s.Blob), len(data))
		}
	})
}
