package wire

import "go.etcd.io/etcd/api/v3/mvccpb"

// RangeResponse is etcdserverpb.RangeResponse.
type RangeResponse struct {
	Header Header
	// Kvs: DecodeRange appends the decoded kvs to Kvs[:0], so that a Kvs
	// with capacity given before decoding is filled without allocating.
	Kvs   []*mvccpb.KeyValue
	More  bool
	Count int64
}

// PutResponse is etcdserverpb.PutResponse.
type PutResponse struct {
	Header Header
	PrevKv *mvccpb.KeyValue
}

// DeleteRangeResponse is etcdserverpb.DeleteRangeResponse.
type DeleteRangeResponse struct {
	Header  Header
	Deleted int64
	PrevKvs []*mvccpb.KeyValue
}

// TxnResponse is etcdserverpb.TxnResponse.
type TxnResponse struct {
	Header    Header
	Succeeded bool
	Responses []ResponseOp
}

// ResponseOp is etcdserverpb.ResponseOp: at most one field is set.
type ResponseOp struct {
	Range  *RangeResponse
	Put    *PutResponse
	Delete *DeleteRangeResponse
	Txn    *TxnResponse
}

// WatchResponse is etcdserverpb.WatchResponse.
type WatchResponse struct {
	Header          Header
	WatchID         int64
	Created         bool
	Canceled        bool
	CompactRevision int64
	CancelReason    string
	Fragment        bool
	Events          []*mvccpb.Event
}

// LeaseResponse holds the fields of the lease RPCs' answers: LeaseGrantResponse
// (ID, TTL, Error), LeaseRevokeResponse, LeaseKeepAliveResponse (ID, TTL) and
// LeaseTimeToLiveResponse (ID, TTL, GrantedTTL, Keys).
type LeaseResponse struct {
	Header     Header
	ID         int64
	TTL        int64
	GrantedTTL int64
	Keys       [][]byte
	Error      string
}

// LeaseLeasesResponse is etcdserverpb.LeaseLeasesResponse.
type LeaseLeasesResponse struct {
	Header Header
	Leases []int64
}

// AuthenticateResponse is etcdserverpb.AuthenticateResponse.
type AuthenticateResponse struct {
	Header Header
	Token  string
}

// VersionResponse is the answer of GET /version.
type VersionResponse struct {
	Server, Cluster, Storage string
}

// HealthResponse is the answer of GET /health.
type HealthResponse struct {
	Health, Reason string
}

func (d *decoder) header(h *Header) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "cluster_id":
			h.ClusterID = d.uint64()
		case "member_id":
			h.MemberID = d.uint64()
		case "revision":
			h.Revision = d.int64()
		case "raft_term":
			h.RaftTerm = d.uint64()
		default:
			d.skip()
		}
	}
}

func (d *decoder) kv(kv *mvccpb.KeyValue) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "key":
			kv.Key = d.bytes()
		case "value":
			kv.Value = d.bytes()
		case "create_revision":
			kv.CreateRevision = d.int64()
		case "mod_revision":
			kv.ModRevision = d.int64()
		case "version":
			kv.Version = d.int64()
		case "lease":
			kv.Lease = d.int64()
		default:
			d.skip()
		}
	}
}

// oneKV puts a single KeyValue and the slice that points to it in one allocation.
type oneKV struct {
	ptr [1]*mvccpb.KeyValue
	kv  mvccpb.KeyValue
}

// kvPtr reads an optional KeyValue object; null or absent is nil.
func (d *decoder) kvPtr() *mvccpb.KeyValue {
	if d.peek() == 'n' {
		d.literal("null")
		return nil
	}
	kv := d.arena.kv()
	d.kv(kv)
	return kv
}

// kvList reads a list of KeyValues, appending them to list: a caller that
// gives a list with room for them saves allocating one (the pages of ReadDir
// are decoded straight into the joined list).
func (d *decoder) kvList(list []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	if !d.open('[') {
		return list
	}
	for d.next(']') {
		var kv *mvccpb.KeyValue
		switch {
		case list == nil && d.arena.KVHint == 1:
			d.arena.KVHint = 0
			one := &oneKV{}
			kv = &one.kv
			one.ptr[0] = kv
			list = one.ptr[:1:1]
		case list == nil:
			kv = d.arena.kv()
			list = make([]*mvccpb.KeyValue, 1, max(cap(d.arena.kvs)-len(d.arena.kvs)+1, 4))
			list[0] = kv
		default:
			kv = d.arena.kv()
			list = append(list, kv)
		}
		d.kv(kv)
	}
	return list
}

func (d *decoder) rangeResponse(r *RangeResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "kvs":
			r.Kvs = d.kvList(r.Kvs[:0])
		case "more":
			r.More = d.boolean()
		case "count":
			r.Count = d.int64()
		default:
			d.skip()
		}
	}
}

func (d *decoder) putResponse(r *PutResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "prev_kv":
			r.PrevKv = d.kvPtr()
		default:
			d.skip()
		}
	}
}

func (d *decoder) deleteResponse(r *DeleteRangeResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "deleted":
			r.Deleted = d.int64()
		case "prev_kvs":
			r.PrevKvs = d.kvList(nil)
		default:
			d.skip()
		}
	}
}

func (d *decoder) txnResponse(r *TxnResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "succeeded":
			r.Succeeded = d.boolean()
		case "responses":
			if d.open('[') {
				for d.next(']') {
					r.Responses = append(r.Responses, ResponseOp{})
					d.responseOp(&r.Responses[len(r.Responses)-1])
				}
			}
		default:
			d.skip()
		}
	}
}

func (d *decoder) responseOp(op *ResponseOp) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "response_range":
			op.Range = new(RangeResponse)
			d.rangeResponse(op.Range)
		case "response_put":
			op.Put = new(PutResponse)
			d.putResponse(op.Put)
		case "response_delete_range":
			op.Delete = new(DeleteRangeResponse)
			d.deleteResponse(op.Delete)
		case "response_txn":
			op.Txn = new(TxnResponse)
			d.txnResponse(op.Txn)
		default:
			d.skip()
		}
	}
}

// oneEvent puts a single Event, its KeyValue and the slice that points to it
// in one allocation: most watch messages carry one event.
type oneEvent struct {
	ptr  [1]*mvccpb.Event
	slot eventSlot
}

func (d *decoder) events() []*mvccpb.Event {
	var list []*mvccpb.Event
	if !d.open('[') {
		return nil
	}
	start := d.pos
	for d.next(']') {
		var ev *mvccpb.Event
		switch len(list) {
		case 0:
			one := &oneEvent{}
			one.slot.ev.Kv = &one.slot.kv
			ev = &one.slot.ev
			one.ptr[0] = ev
			list = one.ptr[:1:1]
		case 1:
			// A batch: guess its length from the size of the first event,
			// so that the list and the event chunk are allocated once
			// rather than grown from 1 by doubling.
			guess := 1 + (len(d.data)-d.pos)/max(d.pos-start, 1)
			d.arena.evHint = guess
			ev = d.arena.event()
			list = append(make([]*mvccpb.Event, 0, min(guess, maxEvChunk)+1), list[0], ev)
		default:
			ev = d.arena.event()
			list = append(list, ev)
		}
		d.event(ev)
	}
	return list
}

func (d *decoder) event(ev *mvccpb.Event) {
	kv := ev.Kv
	ev.Kv = nil
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "type":
			ev.Type = d.eventType()
		case "kv":
			if d.peek() == 'n' {
				d.literal("null")
				continue
			}
			ev.Kv = kv
			d.kv(kv)
		case "prev_kv":
			ev.PrevKv = d.kvPtr()
		default:
			d.skip()
		}
	}
}

func (d *decoder) eventType() mvccpb.Event_EventType {
	switch d.peek() {
	case '"':
		switch string(d.rawString()) {
		case "PUT":
			return mvccpb.PUT
		case "DELETE":
			return mvccpb.DELETE
		}
		d.fail("unknown event type")
	case 'n':
		d.literal("null")
	default:
		switch d.int64() {
		case 0:
			return mvccpb.PUT
		case 1:
			return mvccpb.DELETE
		}
		d.fail("unknown event type")
	}
	return mvccpb.PUT
}

func (d *decoder) watchResponse(r *WatchResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "watch_id":
			r.WatchID = d.int64()
		case "created":
			r.Created = d.boolean()
		case "canceled":
			r.Canceled = d.boolean()
		case "compact_revision":
			r.CompactRevision = d.int64()
		case "cancel_reason":
			r.CancelReason = d.str()
		case "fragment":
			r.Fragment = d.boolean()
		case "events":
			r.Events = d.events()
		default:
			d.skip()
		}
	}
}

func (d *decoder) leaseResponse(r *LeaseResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "ID":
			r.ID = d.int64()
		case "TTL":
			r.TTL = d.int64()
		case "grantedTTL":
			r.GrantedTTL = d.int64()
		case "keys":
			if d.open('[') {
				for d.next(']') {
					r.Keys = append(r.Keys, d.bytes())
				}
			}
		case "error":
			r.Error = d.str()
		default:
			d.skip()
		}
	}
}

func (d *decoder) leasesResponse(r *LeaseLeasesResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "leases":
			if !d.open('[') {
				continue
			}
			for d.next(']') {
				var id int64
				if d.open('{') {
					for d.next('}') {
						if string(d.key()) == "ID" {
							id = d.int64()
						} else {
							d.skip()
						}
					}
				}
				r.Leases = append(r.Leases, id)
			}
		default:
			d.skip()
		}
	}
}

func (d *decoder) authResponse(r *AuthenticateResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "header":
			d.header(&r.Header)
		case "token":
			r.Token = d.str()
		default:
			d.skip()
		}
	}
}

func (d *decoder) versionResponse(r *VersionResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "etcdserver":
			r.Server = d.str()
		case "etcdcluster":
			r.Cluster = d.str()
		case "storage":
			r.Storage = d.str()
		default:
			d.skip()
		}
	}
}

func (d *decoder) healthResponse(r *HealthResponse) {
	if !d.open('{') {
		return
	}
	for d.next('}') {
		switch string(d.key()) {
		case "health":
			// "true" in every version, but a boolean would mean the same.
			if c := d.peek(); c == 't' || c == 'f' {
				if d.boolean() {
					r.Health = "true"
				} else {
					r.Health = "false"
				}
				continue
			}
			r.Health = d.str()
		case "reason":
			r.Reason = d.str()
		default:
			d.skip()
		}
	}
}

// newDecoder returns a decoder of data. The Decode functions below each call
// their method on it directly: handing the method to a shared helper as a
// function value moves the decoder to the heap, an allocation per answer.
func newDecoder(data []byte, a *Arena) decoder {
	if a == nil {
		a = new(Arena)
	}
	return decoder{data: data, arena: a}
}

// DecodeRange decodes a /kv/range answer into r. a may be nil.
func DecodeRange(data []byte, a *Arena, r *RangeResponse) error {
	d := newDecoder(data, a)
	d.rangeResponse(r)
	return d.end()
}

// DecodePut decodes a /kv/put answer into r. a may be nil.
func DecodePut(data []byte, a *Arena, r *PutResponse) error {
	d := newDecoder(data, a)
	d.putResponse(r)
	return d.end()
}

// DecodeDeleteRange decodes a /kv/deleterange answer into r. a may be nil.
func DecodeDeleteRange(data []byte, a *Arena, r *DeleteRangeResponse) error {
	d := newDecoder(data, a)
	d.deleteResponse(r)
	return d.end()
}

// DecodeTxn decodes a /kv/txn answer into r. a may be nil.
func DecodeTxn(data []byte, a *Arena, r *TxnResponse) error {
	d := newDecoder(data, a)
	d.txnResponse(r)
	return d.end()
}

// DecodeHeaderOnly decodes an answer of which only the header matters, such as
// /kv/compaction's.
func DecodeHeaderOnly(data []byte, h *Header) error {
	d := newDecoder(data, nil)
	if d.open('{') {
		for d.next('}') {
			if string(d.key()) == "header" {
				d.header(h)
			} else {
				d.skip()
			}
		}
	}
	return d.end()
}

// DecodeLease decodes the answer of grant, revoke or timetolive.
func DecodeLease(data []byte, r *LeaseResponse) error {
	d := newDecoder(data, nil)
	d.leaseResponse(r)
	return d.end()
}

// DecodeLeases decodes a /lease/leases answer.
func DecodeLeases(data []byte, r *LeaseLeasesResponse) error {
	d := newDecoder(data, nil)
	d.leasesResponse(r)
	return d.end()
}

// DecodeAuthenticate decodes an /auth/authenticate answer.
func DecodeAuthenticate(data []byte, r *AuthenticateResponse) error {
	d := newDecoder(data, nil)
	d.authResponse(r)
	return d.end()
}

// DecodeVersion decodes a /version answer.
func DecodeVersion(data []byte, r *VersionResponse) error {
	d := newDecoder(data, nil)
	d.versionResponse(r)
	return d.end()
}

// DecodeHealth decodes a /health answer.
func DecodeHealth(data []byte, r *HealthResponse) error {
	d := newDecoder(data, nil)
	d.healthResponse(r)
	return d.end()
}
