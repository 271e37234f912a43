package wire

import "strconv"

// Paths of the cluster, maintenance and auth administration RPCs, relative to
// the API prefix.
const (
	PathMemberList     = "/cluster/member/list"
	PathMemberAdd      = "/cluster/member/add"
	PathMemberRemove   = "/cluster/member/remove"
	PathMemberUpdate   = "/cluster/member/update"
	PathMemberPromote  = "/cluster/member/promote"
	PathAlarm          = "/maintenance/alarm"
	PathDefragment     = "/maintenance/defragment"
	PathHashKV         = "/maintenance/hashkv"
	PathSnapshot       = "/maintenance/snapshot"
	PathMoveLeader     = "/maintenance/transfer-leadership"
	PathAuthEnable     = "/auth/enable"
	PathAuthDisable    = "/auth/disable"
	PathAuthStatus     = "/auth/status"
	PathUserAdd        = "/auth/user/add"
	PathUserGet        = "/auth/user/get"
	PathUserList       = "/auth/user/list"
	PathUserDelete     = "/auth/user/delete"
	PathUserChangePW   = "/auth/user/changepw"
	PathUserGrantRole  = "/auth/user/grant"
	PathUserRevokeRole = "/auth/user/revoke"
	PathRoleAdd        = "/auth/role/add"
	PathRoleGet        = "/auth/role/get"
	PathRoleList       = "/auth/role/list"
	PathRoleDelete     = "/auth/role/delete"
	PathRoleGrantPerm  = "/auth/role/grant"
	PathRoleRevokePerm = "/auth/role/revoke"
)

// Alarm actions and types, as in etcdserverpb.AlarmRequest.
const (
	AlarmGet, AlarmActivate, AlarmDeactivate = 0, 1, 2
)

var alarmActionNames = [...]string{"GET", "ACTIVATE", "DEACTIVATE"}
var alarmTypeNames = [...]string{"NONE", "NOSPACE", "CORRUPT"}

// Permission types, as in authpb.Permission.Type.
const (
	PermRead, PermWrite, PermReadWrite = 0, 1, 2
)

var permTypeNames = [...]string{"READ", "WRITE", "READWRITE"}

func (o obj) uint(name string, v uint64) obj {
	o = o.key(name)
	o = append(o, '"')
	o = strconv.AppendUint(o, v, 10)
	return append(o, '"', ',')
}

func (o obj) strList(name string, list []string) obj {
	o = o.key(name)
	o = append(o, '[')
	for i, s := range list {
		if i > 0 {
			o = append(o, ',')
		}
		o = AppendString(o, s)
	}
	return append(o, ']', ',')
}

// AppendMemberList appends the JSON form of etcdserverpb.MemberListRequest. A
// linearizable list is read through the leader (etcd 3.5 and later; older
// servers ignore the field).
func AppendMemberList(b []byte, linearizable bool) []byte {
	return obj(append(b, '{')).bool("linearizable", linearizable).end()
}

// AppendMemberAdd appends the JSON form of etcdserverpb.MemberAddRequest.
func AppendMemberAdd(b []byte, peerURLs []string, learner bool) []byte {
	o := obj(append(b, '{'))
	o = o.strList("peerURLs", peerURLs)
	o = o.bool("isLearner", learner)
	return o.end()
}

// AppendMemberID appends {"ID":"id"}, the body of member remove and promote.
func AppendMemberID(b []byte, id uint64) []byte {
	return obj(append(b, '{')).uint("ID", id).end()
}

// AppendMemberUpdate appends the JSON form of etcdserverpb.MemberUpdateRequest.
func AppendMemberUpdate(b []byte, id uint64, peerURLs []string) []byte {
	o := obj(append(b, '{'))
	o = o.uint("ID", id)
	o = o.strList("peerURLs", peerURLs)
	return o.end()
}

// AppendAlarm appends the JSON form of etcdserverpb.AlarmRequest; alarm is the
// AlarmType name ("NOSPACE", "CORRUPT"), or "" for NONE.
func AppendAlarm(b []byte, action int, memberID uint64, alarm string) []byte {
	o := obj(append(b, '{'))
	if action != AlarmGet {
		o = o.enum("action", alarmActionNames[action])
	}
	if memberID != 0 {
		o = o.uint("memberID", memberID)
	}
	if alarm != "" && alarm != "NONE" {
		o = o.enum("alarm", alarm)
	}
	return o.end()
}

// AppendHashKV appends the JSON form of etcdserverpb.HashKVRequest.
func AppendHashKV(b []byte, rev int64) []byte {
	return obj(append(b, '{')).int("revision", rev).end()
}

// AppendMoveLeader appends the JSON form of etcdserverpb.MoveLeaderRequest.
func AppendMoveLeader(b []byte, target uint64) []byte {
	return obj(append(b, '{')).uint("targetID", target).end()
}

// AppendUserAdd appends the JSON form of etcdserverpb.AuthUserAddRequest.
// options is always sent: etcd 3.4.0-3.4.3 store an unhashed password without
// it (etcd-io/etcd#11414).
func AppendUserAdd(b []byte, name, password string, noPassword bool) []byte {
	o := obj(append(b, '{'))
	o = o.str("name", name)
	if !noPassword {
		o = o.str("password", password)
	}
	o = o.key("options")
	if noPassword {
		o = append(o, `{"no_password":true},`...)
	} else {
		o = append(o, `{},`...)
	}
	return o.end()
}

// AppendStrings appends an object of string members, given as name, value
// pairs: the bodies of the auth calls that take names only. The field names
// differ from call to call (user/grant takes "user", user/revoke "name";
// role/grant "name", role/get "role").
func AppendStrings(b []byte, pairs ...string) []byte {
	o := obj(append(b, '{'))
	for i := 0; i+1 < len(pairs); i += 2 {
		o = o.str(pairs[i], pairs[i+1])
	}
	return o.end()
}

// AppendRoleGrant appends the JSON form of etcdserverpb.AuthRoleGrantPermissionRequest.
func AppendRoleGrant(b []byte, role string, permType int, key, rangeEnd []byte) []byte {
	o := obj(append(b, '{'))
	o = o.str("name", role)
	o = o.key("perm")
	p := obj(append(o, '{'))
	p = p.enum("permType", permTypeNames[permType])
	p = p.bytesAlways("key", key)
	p = p.bytes("range_end", rangeEnd)
	o = append(p.end(), ',')
	return o.end()
}

// AppendRoleRevoke appends the JSON form of etcdserverpb.AuthRoleRevokePermissionRequest.
func AppendRoleRevoke(b []byte, role string, key, rangeEnd []byte) []byte {
	o := obj(append(b, '{'))
	o = o.str("role", role)
	o = o.bytesAlways("key", key)
	o = o.bytes("range_end", rangeEnd)
	return o.end()
}

// Member is etcdserverpb.Member.
type Member struct {
	ID                   uint64
	Name                 string
	PeerURLs, ClientURLs []string
	IsLearner            bool
}

// MemberResponse holds the answers of the member RPCs: Members for all of
// them, Member for member/add.
type MemberResponse struct {
	Header  Header
	Member  Member
	Members []Member
}

// StatusResponse is etcdserverpb.StatusResponse.
type StatusResponse struct {
	Header                                        Header
	Version, StorageVersion                       string
	DBSize, DBSizeInUse, DBSizeQuota              int64
	Leader, RaftIndex, RaftTerm, RaftAppliedIndex uint64
	IsLearner                                     bool
	Errors                                        []string
}

// Alarm is etcdserverpb.AlarmMember.
type Alarm struct {
	MemberID uint64
	Type     string
}

// AlarmResponse is etcdserverpb.AlarmResponse.
type AlarmResponse struct {
	Header Header
	Alarms []Alarm
}

// HashKVResponse is etcdserverpb.HashKVResponse.
type HashKVResponse struct {
	Header                        Header
	Hash                          uint32
	CompactRevision, HashRevision int64
}

// AuthStatusResponse is etcdserverpb.AuthStatusResponse.
type AuthStatusResponse struct {
	Header       Header
	Enabled      bool
	AuthRevision uint64
}

// Permission is authpb.Permission.
type Permission struct {
	Type          int
	Key, RangeEnd []byte
}

// AuthResponse holds the answers of the user and role RPCs: Names is "users"
// of user/list, "roles" of user/get and role/list; Perms is "perm" of role/get.
type AuthResponse struct {
	Header Header
	Names  []string
	Perms  []Permission
}

// SnapshotResponse is etcdserverpb.SnapshotResponse. Blob is decoded into the
// buffer it holds, which grows as needed.
type SnapshotResponse struct {
	RemainingBytes uint64
	Blob           []byte
	Version        string
}

func (d *decoder) strings() []string {
	var list []string
	if !d.open('[') {
		return nil
	}
	for d.next(']') {
		list = append(list, d.str())
	}
	return list
}

func (d *decoder) member(m *Member) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "ID":
			m.ID = d.uint64()
		case "name":
			m.Name = d.str()
		case "peerURLs":
			m.PeerURLs = d.strings()
		case "clientURLs":
			m.ClientURLs = d.strings()
		case "isLearner":
			m.IsLearner = d.boolean()
		default:
			d.skip()
		}
	}
}

// DecodeMembers decodes the answer of a member RPC.
func DecodeMembers(data []byte, r *MemberResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "member":
				d.member(&r.Member)
			case "members":
				if d.open('[') {
					for d.next(']') {
						var m Member
						d.member(&m)
						r.Members = append(r.Members, m)
					}
				}
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

// DecodeStatus decodes a /maintenance/status answer.
func DecodeStatus(data []byte, r *StatusResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "version":
				r.Version = d.str()
			case "storageVersion":
				r.StorageVersion = d.str()
			case "dbSize":
				r.DBSize = d.int64()
			case "dbSizeInUse":
				r.DBSizeInUse = d.int64()
			case "dbSizeQuota":
				r.DBSizeQuota = d.int64()
			case "leader":
				r.Leader = d.uint64()
			case "raftIndex":
				r.RaftIndex = d.uint64()
			case "raftTerm":
				r.RaftTerm = d.uint64()
			case "raftAppliedIndex":
				r.RaftAppliedIndex = d.uint64()
			case "isLearner":
				r.IsLearner = d.boolean()
			case "errors":
				r.Errors = d.strings()
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

// DecodeAlarm decodes a /maintenance/alarm answer.
func DecodeAlarm(data []byte, r *AlarmResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "alarms":
				if d.open('[') {
					for d.next(']') {
						a := Alarm{Type: "NONE"}
						if d.open('{') {
							for d.next('}') {
								switch string(d.key()) {
								case "memberID":
									a.MemberID = d.uint64()
								case "alarm":
									a.Type = d.enumName(alarmTypeNames[:])
								default:
									d.skip()
								}
							}
						}
						r.Alarms = append(r.Alarms, a)
					}
				}
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

// enumName reads an enum written as its name or its number; a number maps to
// names[n], or to its decimal form when it is not in names.
func (d *decoder) enumName(names []string) string {
	if c := d.peek(); c == '-' || '0' <= c && c <= '9' {
		n := d.int64()
		if n >= 0 && n < int64(len(names)) {
			return names[n]
		}
		return strconv.FormatInt(n, 10)
	}
	return d.str()
}

// DecodeHashKV decodes a /maintenance/hashkv answer.
func DecodeHashKV(data []byte, r *HashKVResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "hash":
				h := d.uint64()
				if h > 1<<32-1 {
					d.fail("hash out of range")
				}
				r.Hash = uint32(h)
			case "compact_revision":
				r.CompactRevision = d.int64()
			case "hash_revision":
				r.HashRevision = d.int64()
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

// DecodeAuthStatus decodes an /auth/status answer.
func DecodeAuthStatus(data []byte, r *AuthStatusResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "enabled":
				r.Enabled = d.boolean()
			case "authRevision":
				r.AuthRevision = d.uint64()
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

// DecodeAuth decodes the answer of a user or role RPC.
func DecodeAuth(data []byte, r *AuthResponse) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			switch string(d.key()) {
			case "header":
				d.header(&r.Header)
			case "users", "roles":
				r.Names = d.strings()
			case "perm":
				if d.open('[') {
					for d.next(']') {
						var p Permission
						d.permission(&p)
						r.Perms = append(r.Perms, p)
					}
				}
			default:
				d.skip()
			}
		}
	}
	return d.end()
}

func (d *decoder) permission(p *Permission) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "permType":
			switch d.enumName(permTypeNames[:]) {
			case "READ":
				p.Type = PermRead
			case "WRITE":
				p.Type = PermWrite
			case "READWRITE":
				p.Type = PermReadWrite
			default:
				d.fail("unknown permission type")
			}
		case "key":
			p.Key = d.bytes()
		case "range_end":
			p.RangeEnd = d.bytes()
		default:
			d.skip()
		}
	}
}

// DecodeSnapshotLine decodes one line of a /maintenance/snapshot stream. A
// {"result":...} line fills r, its blob decoded into r.Blob's buffer, and
// returns nil, nil; an {"error":...} line returns its status.
func DecodeSnapshotLine(line []byte, r *SnapshotResponse) (*Status, error) {
	d := newDecoder(line, nil)
	var st *Status
	seen := false
	r.RemainingBytes, r.Blob = 0, r.Blob[:0]
	if !d.open('{') {
		d.fail("expected a stream message")
		return nil, d.err
	}
	for d.next('}') {
		switch string(d.key()) {
		case "result":
			seen = true
			d.snapshotResponse(r)
		case "error":
			seen = true
			st = d.streamError()
		default:
			d.skip()
		}
	}
	if d.err == nil && !seen {
		d.fail(`stream message has neither "result" nor "error"`)
	}
	return st, d.end()
}

func (d *decoder) snapshotResponse(r *SnapshotResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "remaining_bytes":
			r.RemainingBytes = d.uint64()
		case "blob":
			src := d.rawString()
			n := decodedLen(src)
			if n < 0 {
				d.fail("invalid base64 length")
				continue
			}
			if cap(r.Blob) < n {
				r.Blob = make([]byte, n)
			}
			r.Blob = r.Blob[:n]
			if !decodeBase64(r.Blob, src) {
				r.Blob = r.Blob[:0]
				d.fail("invalid base64")
			}
		case "version":
			r.Version = d.str()
		default:
			d.skip()
		}
	}
}
