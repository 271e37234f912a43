package wire

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// SortOrder and SortTarget values, as in etcdserverpb.RangeRequest.
const (
	SortNone, SortAscend, SortDescend = 0, 1, 2
)

// Sort targets, as in etcdserverpb.RangeRequest.SortTarget.
const (
	SortByKey, SortByVersion, SortByCreate, SortByMod, SortByValue = 0, 1, 2, 3, 4
)

var sortOrderNames = [...]string{"NONE", "ASCEND", "DESCEND"}
var sortTargetNames = [...]string{"KEY", "VERSION", "CREATE", "MOD", "VALUE"}

// RangeRequest is etcdserverpb.RangeRequest.
type RangeRequest struct {
	Key, RangeEnd                        []byte
	Limit, Revision                      int64
	SortOrder, SortTarget                int
	Serializable, KeysOnly, CountOnly    bool
	MinModRevision, MaxModRevision       int64
	MinCreateRevision, MaxCreateRevision int64
}

// PutRequest is etcdserverpb.PutRequest.
type PutRequest struct {
	Key, Value                       []byte
	Lease                            int64
	PrevKV, IgnoreValue, IgnoreLease bool
}

// DeleteRangeRequest is etcdserverpb.DeleteRangeRequest.
type DeleteRangeRequest struct {
	Key, RangeEnd []byte
	PrevKV        bool
}

// Compare results and targets, as in etcdserverpb.Compare.
const (
	CompareEqual, CompareGreater, CompareLess, CompareNotEqual       = 0, 1, 2, 3
	TargetVersion, TargetCreate, TargetMod, TargetValue, TargetLease = 0, 1, 2, 3, 4
)

var compareResultNames = [...]string{"EQUAL", "GREATER", "LESS", "NOT_EQUAL"}
var compareTargetNames = [...]string{"VERSION", "CREATE", "MOD", "VALUE", "LEASE"}

// Compare is etcdserverpb.Compare. Number holds the operand of the version,
// create, mod and lease targets, Value that of the value target; the operand is
// always sent, so an explicit zero is compared as such.
type Compare struct {
	Result, Target int
	Key, RangeEnd  []byte
	Number         int64
	Value          []byte
}

// RequestOp is etcdserverpb.RequestOp: exactly one field is set.
type RequestOp struct {
	Range  *RangeRequest
	Put    *PutRequest
	Delete *DeleteRangeRequest
	Txn    *TxnRequest
}

// TxnRequest is etcdserverpb.TxnRequest.
type TxnRequest struct {
	Compare          []Compare
	Success, Failure []RequestOp
}

// WatchCreateRequest is etcdserverpb.WatchCreateRequest.
type WatchCreateRequest struct {
	Key, RangeEnd           []byte
	StartRevision           int64
	ProgressNotify          bool
	FilterPut, FilterDelete bool
	PrevKV, Fragment        bool
	WatchID                 int64
}

// obj builds one JSON object: fields are appended with a trailing comma, and
// end replaces the last comma by the closing brace.
type obj []byte

func (o obj) key(name string) obj {
	o = append(o, '"')
	o = append(o, name...)
	return append(o, '"', ':')
}

func (o obj) bytes(name string, v []byte) obj {
	if len(v) == 0 {
		return o
	}
	return o.bytesAlways(name, v)
}

func (o obj) bytesAlways(name string, v []byte) obj {
	o = o.key(name)
	o = append(o, '"')
	o = base64.StdEncoding.AppendEncode(o, v)
	return append(o, '"', ',')
}

func (o obj) int(name string, v int64) obj {
	if v == 0 {
		return o
	}
	return o.intAlways(name, v)
}

// intAlways writes an int64 as the gateway writes it: a JSON string, so that
// values above 2^53 survive every JSON reader.
func (o obj) intAlways(name string, v int64) obj {
	o = o.key(name)
	o = append(o, '"')
	o = strconv.AppendInt(o, v, 10)
	return append(o, '"', ',')
}

func (o obj) bool(name string, v bool) obj {
	if !v {
		return o
	}
	o = o.key(name)
	return append(o, "true,"...)
}

func (o obj) enum(name, value string) obj {
	o = o.key(name)
	o = append(o, '"')
	o = append(o, value...)
	return append(o, '"', ',')
}

func (o obj) str(name, v string) obj {
	o = o.key(name)
	o = AppendString(o, v)
	return append(o, ',')
}

func (o obj) end() []byte {
	if n := len(o); n > 0 && o[n-1] == ',' {
		o[n-1] = '}'
		return o
	}
	return append(o, '}')
}

// AppendString appends s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8 by U+FFFD as encoding/json does.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendRange appends the JSON form of r.
func AppendRange(b []byte, r *RangeRequest) []byte {
	return appendRange(obj(append(b, '{')), r).end()
}

func appendRange(o obj, r *RangeRequest) obj {
	o = o.bytesAlways("key", r.Key)
	o = o.bytes("range_end", r.RangeEnd)
	o = o.int("limit", r.Limit)
	o = o.int("revision", r.Revision)
	if r.SortOrder != SortNone {
		o = o.enum("sort_order", sortOrderNames[r.SortOrder])
	}
	if r.SortTarget != SortByKey {
		o = o.enum("sort_target", sortTargetNames[r.SortTarget])
	}
	o = o.bool("serializable", r.Serializable)
	o = o.bool("keys_only", r.KeysOnly)
	o = o.bool("count_only", r.CountOnly)
	o = o.int("min_mod_revision", r.MinModRevision)
	o = o.int("max_mod_revision", r.MaxModRevision)
	o = o.int("min_create_revision", r.MinCreateRevision)
	o = o.int("max_create_revision", r.MaxCreateRevision)
	return o
}

// AppendPut appends the JSON form of r.
func AppendPut(b []byte, r *PutRequest) []byte {
	return appendPut(obj(append(b, '{')), r).end()
}

func appendPut(o obj, r *PutRequest) obj {
	o = o.bytesAlways("key", r.Key)
	o = o.bytes("value", r.Value)
	o = o.int("lease", r.Lease)
	o = o.bool("prev_kv", r.PrevKV)
	o = o.bool("ignore_value", r.IgnoreValue)
	o = o.bool("ignore_lease", r.IgnoreLease)
	return o
}

// AppendDeleteRange appends the JSON form of r.
func AppendDeleteRange(b []byte, r *DeleteRangeRequest) []byte {
	return appendDeleteRange(obj(append(b, '{')), r).end()
}

func appendDeleteRange(o obj, r *DeleteRangeRequest) obj {
	o = o.bytesAlways("key", r.Key)
	o = o.bytes("range_end", r.RangeEnd)
	o = o.bool("prev_kv", r.PrevKV)
	return o
}

// AppendTxn appends the JSON form of r.
func AppendTxn(b []byte, r *TxnRequest) []byte {
	return appendTxn(obj(append(b, '{')), r).end()
}

func appendTxn(o obj, r *TxnRequest) obj {
	if len(r.Compare) > 0 {
		o = o.key("compare")
		o = append(o, '[')
		for i := range r.Compare {
			if i > 0 {
				o = append(o, ',')
			}
			o = appendCompare(obj(append(o, '{')), &r.Compare[i]).end()
		}
		o = append(o, ']', ',')
	}
	o = appendOps(o, "success", r.Success)
	o = appendOps(o, "failure", r.Failure)
	return o
}

func appendCompare(o obj, c *Compare) obj {
	o = o.enum("result", compareResultNames[c.Result])
	o = o.enum("target", compareTargetNames[c.Target])
	o = o.bytesAlways("key", c.Key)
	o = o.bytes("range_end", c.RangeEnd)
	switch c.Target {
	case TargetVersion:
		o = o.intAlways("version", c.Number)
	case TargetCreate:
		o = o.intAlways("create_revision", c.Number)
	case TargetMod:
		o = o.intAlways("mod_revision", c.Number)
	case TargetLease:
		o = o.intAlways("lease", c.Number)
	case TargetValue:
		o = o.key("value")
		o = append(o, '"')
		o = base64.StdEncoding.AppendEncode(o, c.Value)
		o = append(o, '"', ',')
	}
	return o
}

func appendOps(o obj, name string, ops []RequestOp) obj {
	if len(ops) == 0 {
		return o
	}
	o = o.key(name)
	o = append(o, '[')
	for i := range ops {
		if i > 0 {
			o = append(o, ',')
		}
		op := &ops[i]
		o = append(o, '{')
		switch {
		case op.Range != nil:
			o = appendRange(obj(append(o.key("request_range"), '{')), op.Range).end()
		case op.Put != nil:
			o = appendPut(obj(append(o.key("request_put"), '{')), op.Put).end()
		case op.Delete != nil:
			o = appendDeleteRange(obj(append(o.key("request_delete_range"), '{')), op.Delete).end()
		case op.Txn != nil:
			o = appendTxn(obj(append(o.key("request_txn"), '{')), op.Txn).end()
		}
		o = append(o, '}')
	}
	return append(o, ']', ',')
}

// AppendCompaction appends the JSON form of etcdserverpb.CompactionRequest.
func AppendCompaction(b []byte, rev int64, physical bool) []byte {
	o := obj(append(b, '{'))
	o = o.int("revision", rev)
	o = o.bool("physical", physical)
	return o.end()
}

// AppendWatchCreate appends {"create_request":{...}}.
func AppendWatchCreate(b []byte, r *WatchCreateRequest) []byte {
	b = append(b, `{"create_request":{`...)
	o := obj(b)
	o = o.bytesAlways("key", r.Key)
	o = o.bytes("range_end", r.RangeEnd)
	o = o.int("start_revision", r.StartRevision)
	o = o.bool("progress_notify", r.ProgressNotify)
	if r.FilterPut || r.FilterDelete {
		o = o.key("filters")
		o = append(o, '[')
		if r.FilterPut {
			o = append(o, `"NOPUT"`...)
		}
		if r.FilterDelete {
			if r.FilterPut {
				o = append(o, ',')
			}
			o = append(o, `"NODELETE"`...)
		}
		o = append(o, ']', ',')
	}
	o = o.bool("prev_kv", r.PrevKV)
	o = o.int("watch_id", r.WatchID)
	o = o.bool("fragment", r.Fragment)
	return append(o.end(), '}')
}

// AppendWatchCancel appends {"cancel_request":{"watch_id":"id"}}.
func AppendWatchCancel(b []byte, watchID int64) []byte {
	b = append(b, `{"cancel_request":{"watch_id":"`...)
	b = strconv.AppendInt(b, watchID, 10)
	return append(b, `"}}`...)
}

// AppendWatchProgress appends {"progress_request":{}}.
func AppendWatchProgress(b []byte) []byte {
	return append(b, `{"progress_request":{}}`...)
}

// AppendLeaseGrant appends the JSON form of etcdserverpb.LeaseGrantRequest.
func AppendLeaseGrant(b []byte, ttl, id int64) []byte {
	o := obj(append(b, '{'))
	o = o.intAlways("TTL", ttl)
	o = o.int("ID", id)
	return o.end()
}

// AppendLeaseID appends {"ID":"id"}, the body of revoke and keepalive.
func AppendLeaseID(b []byte, id int64) []byte {
	return obj(append(b, '{')).intAlways("ID", id).end()
}

// AppendLeaseTimeToLive appends the JSON form of etcdserverpb.LeaseTimeToLiveRequest.
func AppendLeaseTimeToLive(b []byte, id int64, keys bool) []byte {
	o := obj(append(b, '{'))
	o = o.intAlways("ID", id)
	o = o.bool("keys", keys)
	return o.end()
}

// AppendAuthenticate appends the JSON form of etcdserverpb.AuthenticateRequest.
func AppendAuthenticate(b []byte, name, password string) []byte {
	o := obj(append(b, '{'))
	o = o.str("name", name)
	o = o.str("password", password)
	return o.end()
}
