package etcdgw

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// ResponseHeader is the header of every answer: which cluster and member
// answered, at which revision of the store, in which raft term.
type ResponseHeader struct {
	ClusterID, MemberID uint64
	Revision            int64
	RaftTerm            uint64
}

// GetResponse is the answer of Get and ReadDir.
type GetResponse struct {
	Header ResponseHeader
	// Kvs are the key-value pairs found, keys without the client's key prefix,
	// values as stored: decode them with Client.Decode. A key that does not
	// exist is no error: Kvs is empty.
	Kvs []*mvccpb.KeyValue
	// More reports that the range holds more keys than were returned (WithLimit).
	More bool
	// Count is the number of keys in the range, whatever the limit.
	Count int64
}

// PutResponse is the answer of Set.
type PutResponse struct {
	Header ResponseHeader
	// PrevKv is the pair before the write, with WithPrevKV and if the key existed.
	PrevKv *mvccpb.KeyValue
}

// DeleteResponse is the answer of Delete and RmDir.
type DeleteResponse struct {
	Header ResponseHeader
	// Deleted is the number of keys deleted; 0 when there was none.
	Deleted int64
	// PrevKvs are the deleted pairs, with WithPrevKV.
	PrevKvs []*mvccpb.KeyValue
}

// Get returns the key, or with WithPrefix, WithRange or WithFromKey the keys of
// a range. A missing key is no error: the response has no Kvs.
// Options: WithRev, WithPrefix, WithRange, WithFromKey, WithLimit, WithSort,
// WithKeysOnly, WithCountOnly, WithSerializable, WithMin/MaxModRev,
// WithMin/MaxCreateRev. Errors: ErrKeyNotProvided for an empty key without a
// range option, ErrCompacted and ErrFutureRev for WithRev, ErrInvalidOption.
func (c *Client) Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	op := Op{kind: opGet, key: key}
	if err := op.applyOpts("Get", rangeOpts, opts); err != nil {
		return nil, err
	}
	req, err := c.rangeRequest("Get", &op)
	if err != nil {
		return nil, err
	}
	if c.coal != nil && coalescable(req, op.leader()) {
		return c.coalescedGet(ctx, req)
	}
	var a wire.Arena
	if req.RangeEnd == nil {
		a.KVHint = 1
	}
	var out wire.RangeResponse
	if err := c.rangeCall(ctx, req, op.leader(), &a, &out); err != nil {
		return nil, err
	}
	return c.getResponse(&out), nil
}

func (c *Client) rangeCall(ctx context.Context, req *wire.RangeRequest, leader bool, a *wire.Arena, out *wire.RangeResponse) error {
	return c.unary(ctx, &rpc{path: wire.PathRange, body: wire.AppendRange(nil, req), idempotent: true, leader: leader},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeRange(b, a, out) })
}

// ReadDir returns every key that starts with dir, read at one revision. dir is
// a plain prefix: "/dir/" reads "/dir/a" but not "/dir-"; "/dir" would read
// "/dirty" too. The empty dir reads every key (under the key prefix).
//
// A large directory is read in pages, in key order, at the revision of the
// first page: no answer is ever too large for the gateway, and only one
// decoded copy of the directory is held. WithLimit caps the total. Every key
// comes back exactly once, whatever the sort: WithSort by key reads pages
// (backwards from the end for SortDescend with WithLimit); any other sort with
// WithLimit is one request for the top keys by that target, and without it the
// pages are sorted on the client, by the target and then by key (SortNone with
// a target other than the key sorts in ascending order, as etcd does).
// WithCountOnly is one request.
//
// The pages of a WithSerializable ReadDir all go to the member that answered
// the first. When the revision of the first page is compacted before the last
// page is read, or the member of a serializable ReadDir fails between pages,
// the ReadDir starts over at a new revision, a few times at most; with WithRev
// it fails instead, with ErrCompacted.
// Options: as Get, but for WithPrefix, WithRange and WithFromKey.
func (c *Client) ReadDir(ctx context.Context, dir string, opts ...OpOption) (*GetResponse, error) {
	op := Op{kind: opGet, key: dir}
	if err := op.applyOpts("ReadDir", readDirOpts, opts); err != nil {
		return nil, err
	}
	op.opts |= optPrefix
	req, err := c.rangeRequest("ReadDir", &op)
	if err != nil {
		return nil, err
	}
	plan := readDirPlan(req.SortTarget, req.SortOrder, req.Limit, req.CountOnly)
	if plan == dirOne {
		if req.SortTarget != wire.SortByKey && req.SortOrder == wire.SortNone {
			req.SortOrder = wire.SortAscend // what etcd does, said for every version
		}
		var out wire.RangeResponse
		if err := c.rangeCall(ctx, req, op.leader(), nil, &out); err != nil {
			return nil, err
		}
		return c.getResponse(&out), nil
	}
	target, order, keysOnly := req.SortTarget, req.SortOrder, req.KeysOnly
	// Pages are sent with SortNone: etcd drops the limit of any other sort
	// (but for (KEY, ASCEND) on 3.7), so each page would scan the rest.
	req.SortTarget, req.SortOrder = wire.SortByKey, wire.SortNone
	if plan == dirBackward {
		req.SortOrder = wire.SortDescend
	}
	if plan == dirSorted && target == wire.SortByValue {
		req.KeysOnly = false // the values are needed to sort by them
	}
	res, err := c.readDir(ctx, req, op.leader(), plan == dirBackward)
	if err != nil {
		return nil, err
	}
	if plan == dirSorted {
		sortKVs(res.Kvs, target, order)
		if keysOnly {
			for _, kv := range res.Kvs {
				kv.Value = nil
			}
		}
	}
	return res, nil
}

// dirRead is how ReadDir serves a request.
type dirRead int

const (
	dirOne      dirRead = iota // one Range as asked: a count, or the top N by a sort
	dirPages                   // pages in key order
	dirBackward                // pages in descending key order, each ending where the last stopped
	dirSorted                  // pages in key order, sorted on the client
)

// readDirPlan decides how ReadDir serves a sort by target in order (wire
// values), a limit (0: none) and WithCountOnly.
func readDirPlan(target, order int, limit int64, countOnly bool) dirRead {
	switch {
	case countOnly:
		return dirOne
	case target == wire.SortByKey && order != wire.SortDescend:
		return dirPages
	case target == wire.SortByKey && limit > 0:
		return dirBackward
	case limit > 0:
		return dirOne
	}
	return dirSorted
}

// sortKVs sorts kvs, which are in key order, by target in order (wire values):
// ties stay in key order. SortNone sorts in ascending order, as etcd does for
// a target other than the key.
func sortKVs(kvs []*mvccpb.KeyValue, target, order int) {
	if target == wire.SortByKey && order != wire.SortDescend {
		return
	}
	by := func(a, b *mvccpb.KeyValue) int {
		switch target {
		case wire.SortByVersion:
			return cmp.Compare(a.Version, b.Version)
		case wire.SortByCreate:
			return cmp.Compare(a.CreateRevision, b.CreateRevision)
		case wire.SortByMod:
			return cmp.Compare(a.ModRevision, b.ModRevision)
		case wire.SortByValue:
			return bytes.Compare(a.Value, b.Value)
		}
		return bytes.Compare(a.Key, b.Key)
	}
	if order == wire.SortDescend {
		slices.SortStableFunc(kvs, func(a, b *mvccpb.KeyValue) int { return by(b, a) })
		return
	}
	slices.SortStableFunc(kvs, by)
}

// maxDirRestarts is how many times a ReadDir starts over at a new revision
// before it returns the error.
const maxDirRestarts = 3

// readDir reads a range in pages, starting over at a new revision when
// restartDir allows.
func (c *Client) readDir(ctx context.Context, req *wire.RangeRequest, leader, backward bool) (*GetResponse, error) {
	callerRev := req.Revision != 0
	for restarts := 0; ; restarts++ {
		r := *req
		res, later, err := c.readPages(ctx, &r, leader, backward)
		if err == nil {
			return res, nil
		}
		if restarts == maxDirRestarts || !restartDir(err, later, callerRev, req.Serializable) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// restartDir reports whether a ReadDir whose page failed with err starts over
// at a new revision: a page after the first (later) failed because its
// revision was compacted, or because the member that every page of a
// serializable ReadDir goes to failed; not when the caller chose the revision.
func restartDir(err error, later, callerRev, serializable bool) bool {
	if !later || callerRev {
		return false
	}
	if errors.Is(err, ErrCompacted) {
		return true
	}
	return serializable && memberFailed(err)
}

// memberFailed reports whether err is a failure of the member rather than an
// answer to the request, an end of the call or a limit of the client.
func memberFailed(err error) bool {
	switch {
	case errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNoHealthyEndpoint):
		return true // even when a deadline ended it: readDir checks the caller's
	case isContextError(err), errors.Is(err, ErrResponseTooLarge), errors.Is(err, ErrMalformedResponse):
		return false
	}
	var e *Error
	return !errors.As(err, &e) || e.HTTPStatus >= 500
}

// Page sizes of ReadDir: a page is sized to land between pageMinBytes and
// pageMaxBytes of JSON, starting at pageStart keys.
const (
	pageStart    = 500
	pageMin      = 16
	pageMax      = 10000
	pageMinBytes = 512 << 10
	pageMaxBytes = 2 << 20
)

// maxJoinHint bounds the room reserved for a ReadDir's keys on the word of
// the first page's count: a count from something that is not etcd must not
// allocate gigabytes. A larger directory grows the list as its pages come.
const maxJoinHint = 1 << 16

// joinedCap is the capacity of the list that joins a ReadDir's pages, given the
// count of the first page, the caller's limit (0: none) and the keys the first
// page holds.
func joinedCap(count, limit int64, got int) int {
	n := count
	if limit > 0 {
		n = min(n, limit)
	}
	n = min(n, int64(got)+maxJoinHint)
	return int(max(n, int64(got)))
}

// pageInOrder reports whether the keys of a page are in the order pages are
// read, strictly after (before, backwards) after, the last key of the previous
// page (nil for the first page), and within [start, end). A server that
// answers otherwise would make the pages repeat or skip keys, or never end.
func pageInOrder(kvs []*mvccpb.KeyValue, after, start, end []byte, backward bool) bool {
	prev := after
	for _, kv := range kvs {
		k := kv.Key
		if bytes.Compare(k, start) < 0 || !(len(end) == 1 && end[0] == 0) && bytes.Compare(k, end) >= 0 {
			return false
		}
		if prev != nil {
			c := bytes.Compare(k, prev)
			if backward && c >= 0 || !backward && c <= 0 {
				return false
			}
		}
		prev = k
	}
	return true
}

// readPages reads a range in pages at one revision and joins them. later
// reports that the error, if any, came after the first page.
func (c *Client) readPages(ctx context.Context, req *wire.RangeRequest, leader, backward bool) (res *GetResponse, later bool, err error) {
	var (
		a          wire.Arena
		total      = req.Limit // 0: no limit
		size       = int64(pageStart)
		start, end = req.Key, req.RangeEnd
		last       []byte
		pinned     *endpoint.Endpoint
	)
	for {
		page := size
		if total > 0 {
			page = min(page, total-int64(len(res.kvs())))
		}
		req.Limit = page
		a.KVHint = int(page)
		if res != nil && res.Count > int64(len(res.Kvs)) {
			// The last page is often short: size its chunk by what is left.
			a.KVHint = int(min(page, res.Count-int64(len(res.Kvs))))
		}
		var out wire.RangeResponse
		if res != nil {
			// Decode straight into the room left in the joined list.
			out.Kvs = res.Kvs[len(res.Kvs):]
		}
		var bodyLen int
		err := c.unary(ctx, &rpc{path: wire.PathRange, body: wire.AppendRange(nil, req), idempotent: true, leader: leader, ep: pinned},
			func(b []byte, ep *endpoint.Endpoint) error {
				bodyLen = len(b)
				if err := wire.DecodeRange(b, &a, &out); err != nil {
					return err
				}
				if !pageInOrder(out.Kvs, last, start, end, backward) {
					return errors.New("a page of keys out of order or out of the range")
				}
				if req.Serializable && pinned == nil {
					pinned = ep // the later pages read this member's revision
				}
				return nil
			})
		if err != nil {
			return nil, res != nil, err
		}
		if res == nil {
			res = &GetResponse{Header: ResponseHeader(out.Header), Count: out.Count}
			res.Kvs = make([]*mvccpb.KeyValue, 0, joinedCap(out.Count, total, len(out.Kvs)))
			if req.Revision == 0 {
				req.Revision = out.Header.Revision // every later page reads the same revision
			}
		}
		res.Kvs = append(res.Kvs, out.Kvs...) // in place when they were decoded into its room
		if c.pageHook != nil {
			c.pageHook()
		}
		reachedLimit := total > 0 && int64(len(res.Kvs)) >= total
		if !out.More || len(out.Kvs) == 0 || reachedLimit {
			res.More = out.More
			break
		}
		last = out.Kvs[len(out.Kvs)-1].Key
		if backward {
			req.RangeEnd = last
		} else {
			req.Key = append(append(make([]byte, 0, len(last)+1), last...), 0)
		}
		switch {
		case bodyLen > pageMaxBytes && size > pageMin:
			size = max(size/2, pageMin)
		case bodyLen < pageMinBytes && size < pageMax:
			size = min(size*2, pageMax)
		}
	}
	c.stripKVs(res.Kvs)
	return res, false, nil
}

func (r *GetResponse) kvs() []*mvccpb.KeyValue {
	if r == nil {
		return nil
	}
	return r.Kvs
}

// Set writes val, serialized, to key. With WithTTL on the client and no
// WithLease, it first grants a lease of that TTL and attaches the key to it.
// Options: WithLease, WithPrevKV, WithIgnoreValue (val must be nil),
// WithIgnoreLease. Errors: ErrKeyNotProvided, ErrInvalidArgument for a value
// the serializer refuses, ErrLeaseNotFound, ErrRequestTooLarge, ErrNoSpace;
// ErrOutcomeUnknown for a write sent and not confirmed (it may have been
// applied: read back to find out); ErrUnavailable or ErrNoHealthyEndpoint
// when no member took it.
func (c *Client) Set(ctx context.Context, key string, val any, opts ...OpOption) (*PutResponse, error) {
	op := Op{kind: opPut, key: key, val: val}
	if err := op.applyOpts("Set", putOpts, opts); err != nil {
		return nil, err
	}
	req, err := c.putRequest("Set", &op)
	if err != nil {
		return nil, err
	}
	if err := c.attachTTL(ctx, &op, req); err != nil {
		return nil, err
	}
	var a wire.Arena
	var out wire.PutResponse
	err = c.unary(ctx, &rpc{path: wire.PathPut, body: wire.AppendPut(nil, req), leader: op.leader()},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodePut(b, &a, &out) })
	if err != nil {
		return nil, err
	}
	return c.putResponse(&out), nil
}

// attachTTL grants the client's default TTL lease for a write without one.
func (c *Client) attachTTL(ctx context.Context, op *Op, req *wire.PutRequest) error {
	if c.cfg.ttl <= 0 || op.opts&(optLease|optIgnoreLease) != 0 {
		return nil
	}
	g, err := c.Grant(ctx, c.cfg.ttl)
	if err != nil {
		return fmt.Errorf("etcdgw: granting the WithTTL lease: %w", err)
	}
	req.Lease = int64(g.ID)
	return nil
}

// SetNX writes val to key only if the key does not exist, in one transaction.
// Succeeded reports that the key was absent and is now set. With WithTTL on the
// client, a lease granted for a key that turned out to exist is revoked.
// Options: WithLease. Errors: as Set.
func (c *Client) SetNX(ctx context.Context, key string, val any, opts ...OpOption) (*TxnResponse, error) {
	return c.setIf(ctx, "SetNX", key, val, opts, setNXOpts, wire.CompareEqual)
}

// SetX writes val to key only if the key exists, in one transaction. Succeeded
// reports that the key existed and was updated (lua-resty-etcd's setx reports
// the opposite). Options: WithLease, WithPrevKV, WithIgnoreValue,
// WithIgnoreLease. Errors: as Set.
func (c *Client) SetX(ctx context.Context, key string, val any, opts ...OpOption) (*TxnResponse, error) {
	return c.setIf(ctx, "SetX", key, val, opts, setXOpts, wire.CompareGreater)
}

// setIf puts key if its create revision compares to 0 by result.
func (c *Client) setIf(ctx context.Context, what, key string, val any, opts []OpOption, allowed opt, result int) (*TxnResponse, error) {
	op := Op{kind: opPut, key: key, val: val}
	if err := op.applyOpts(what, allowed, opts); err != nil {
		return nil, err
	}
	put, err := c.putRequest(what, &op)
	if err != nil {
		return nil, err
	}
	if err := c.attachTTL(ctx, &op, put); err != nil {
		return nil, err
	}
	txn := &wire.TxnRequest{
		Compare: []wire.Compare{{Result: result, Target: wire.TargetCreate, Key: put.Key, Number: 0}},
		Success: []wire.RequestOp{{Put: put}},
	}
	res, err := c.commit(ctx, txn, false, op.leader())
	if err == nil && !res.Succeeded && put.Lease != 0 && op.opts&optLease == 0 {
		// The key was not written: the lease granted for it has no use.
		_, _ = c.Revoke(ctx, LeaseID(put.Lease))
	}
	return res, err
}

// Delete deletes the key, or with WithPrefix, WithRange or WithFromKey the keys
// of a range. Deleting a missing key is no error: Deleted is 0.
// The empty key with WithPrefix or WithFromKey means every key under the key
// prefix; without a key prefix it fails with ErrInvalidArgument before
// anything is sent (so does an OpDelete in a Txn): a deliberate wipe of the
// whole keyspace says so, Delete(ctx, "\x00", WithFromKey()).
// Options: WithPrefix, WithRange, WithFromKey, WithPrevKV. Errors:
// ErrKeyNotProvided, ErrInvalidArgument; ErrOutcomeUnknown for a delete sent
// and not confirmed (it may have been applied); ErrUnavailable or
// ErrNoHealthyEndpoint when no member took it.
func (c *Client) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	op := Op{kind: opDelete, key: key}
	if err := op.applyOpts("Delete", deleteOpts, opts); err != nil {
		return nil, err
	}
	return c.deleteOp(ctx, "Delete", &op)
}

// RmDir deletes every key that starts with dir. The empty dir deletes every key
// under the key prefix; without a key prefix it fails with ErrInvalidArgument
// before anything is sent (see Delete for a deliberate wipe).
// Options: WithPrevKV. Errors: as Delete.
func (c *Client) RmDir(ctx context.Context, dir string, opts ...OpOption) (*DeleteResponse, error) {
	op := Op{kind: opDelete, key: dir}
	if err := op.applyOpts("RmDir", rmDirOpts, opts); err != nil {
		return nil, err
	}
	op.opts |= optPrefix
	return c.deleteOp(ctx, "RmDir", &op)
}

func (c *Client) deleteOp(ctx context.Context, what string, op *Op) (*DeleteResponse, error) {
	req, err := c.deleteRequest(what, op)
	if err != nil {
		return nil, err
	}
	var a wire.Arena
	var out wire.DeleteRangeResponse
	err = c.unary(ctx, &rpc{path: wire.PathDeleteRange, body: wire.AppendDeleteRange(nil, req), leader: op.leader()},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeDeleteRange(b, &a, &out) })
	if err != nil {
		return nil, err
	}
	return c.deleteResponse(&out), nil
}

// Compact discards the history of the store before revision rev: reads and
// watches at older revisions fail with ErrCompacted. Errors: ErrCompacted if rev
// is already compacted, ErrFutureRev if it is beyond the store,
// ErrOutcomeUnknown for a compaction sent and not confirmed.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	if rev <= 0 {
		return invalidArgument("Compact(%d): revision must be positive", rev)
	}
	var h wire.Header
	return c.unary(ctx, &rpc{path: wire.PathCompaction, body: wire.AppendCompaction(nil, rev, false)},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeHeaderOnly(b, &h) })
}

// Decode unmarshals a stored value, such as GetResponse.Kvs[i].Value, with the
// client's serializer.
func (c *Client) Decode(value []byte, v any) error {
	err := c.serializer.Unmarshal(value, v)
	if err != nil && c.serializer == JSON && notJSON(err) {
		return fmt.Errorf("etcdgw: the value is not JSON; use etcdgw.Raw for plain strings: %w", err)
	}
	return err
}

// notJSON reports whether err of encoding/json says that its input is no
// JSON at all, rather than JSON of another shape.
func notJSON(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fullKey is the key as sent: the key prefix, then key.
func (c *Client) fullKey(key string) []byte {
	b := make([]byte, 0, len(c.keyPrefix)+len(key))
	return append(append(b, c.keyPrefix...), key...)
}

// prefixEnd is the end of the range of keys that start with prefix: prefix with
// its last byte below 0xff incremented, or "\x00" (no end) when there is none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// keyRange returns the key and range end to send for op's key and options.
func (c *Client) keyRange(what string, op *Op) (key, end []byte, err error) {
	noEnd := func() []byte { // +infinity, within the key prefix
		if len(c.keyPrefix) > 0 {
			return prefixEnd(c.keyPrefix)
		}
		return []byte{0}
	}
	switch {
	case op.opts&optPrefix != 0:
		key = c.fullKey(op.key)
		if len(key) == 0 {
			return []byte{0}, []byte{0}, nil
		}
		return key, prefixEnd(key), nil
	case op.opts&optFromKey != 0:
		key = c.fullKey(op.key)
		if len(key) == 0 {
			key = []byte{0}
		}
		return key, noEnd(), nil
	case op.opts&optRange != 0:
		key = c.fullKey(op.key)
		if len(key) == 0 {
			key = []byte{0}
		}
		if op.end == "\x00" {
			return key, noEnd(), nil
		}
		return key, c.fullKey(op.end), nil
	}
	if op.key == "" {
		return nil, nil, fmt.Errorf("etcdgw: %s: empty key: %w", what, ErrKeyNotProvided)
	}
	return c.fullKey(op.key), nil, nil
}

func (c *Client) rangeRequest(what string, op *Op) (*wire.RangeRequest, error) {
	key, end, err := c.keyRange(what, op)
	if err != nil {
		return nil, err
	}
	return &wire.RangeRequest{
		Key:               key,
		RangeEnd:          end,
		Limit:             op.limit,
		Revision:          op.rev,
		SortOrder:         int(op.sortOrder),
		SortTarget:        int(op.sortTarget),
		Serializable:      op.opts&optSerializable != 0,
		KeysOnly:          op.opts&optKeysOnly != 0,
		CountOnly:         op.opts&optCountOnly != 0,
		MinModRevision:    op.minModRev,
		MaxModRevision:    op.maxModRev,
		MinCreateRevision: op.minCreateRev,
		MaxCreateRevision: op.maxCreateRev,
	}, nil
}

func (c *Client) putRequest(what string, op *Op) (*wire.PutRequest, error) {
	if op.key == "" {
		return nil, fmt.Errorf("etcdgw: %s: empty key: %w", what, ErrKeyNotProvided)
	}
	req := &wire.PutRequest{
		Key:         c.fullKey(op.key),
		Lease:       int64(op.lease),
		PrevKV:      op.opts&optPrevKV != 0,
		IgnoreValue: op.opts&optIgnoreValue != 0,
		IgnoreLease: op.opts&optIgnoreLease != 0,
	}
	if req.IgnoreValue {
		if op.val != nil {
			return nil, invalidArgument("%s(%q): WithIgnoreValue with a non-nil value", what, op.key)
		}
		return req, nil
	}
	val, err := marshal(c.serializer, op.val)
	if err != nil {
		return nil, fmt.Errorf("%w: %s(%q): %w", ErrInvalidArgument, what, op.key, err)
	}
	req.Value = val
	return req, nil
}

// wipesAll reports whether a delete of key with these options is a request
// to delete every key of a client without a key prefix that does not say so:
// the empty key with WithPrefix, WithFromKey or WithRange("\x00") (RmDir("")
// among them).
func wipesAll(key, end string, opts opt, keyPrefix bool) bool {
	return key == "" && !keyPrefix && (opts&(optPrefix|optFromKey) != 0 || (opts&optRange != 0 && end == "\x00"))
}

func (c *Client) deleteRequest(what string, op *Op) (*wire.DeleteRangeRequest, error) {
	if wipesAll(op.key, op.end, op.opts, len(c.keyPrefix) > 0) {
		return nil, invalidArgument("%s(\"\"): would delete every key; to mean it, Delete(ctx, \"\\x00\", WithFromKey())", what)
	}
	key, end, err := c.keyRange(what, op)
	if err != nil {
		return nil, err
	}
	return &wire.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKV: op.opts&optPrevKV != 0}, nil
}

// strip removes the key prefix from a returned key.
func (c *Client) strip(kv *mvccpb.KeyValue) {
	if kv != nil && len(c.keyPrefix) > 0 && bytes.HasPrefix(kv.Key, c.keyPrefix) {
		kv.Key = kv.Key[len(c.keyPrefix):len(kv.Key):len(kv.Key)]
	}
}

func (c *Client) stripKVs(kvs []*mvccpb.KeyValue) {
	if len(c.keyPrefix) == 0 {
		return
	}
	for _, kv := range kvs {
		c.strip(kv)
	}
}

func (c *Client) getResponse(r *wire.RangeResponse) *GetResponse {
	c.stripKVs(r.Kvs)
	return &GetResponse{Header: ResponseHeader(r.Header), Kvs: r.Kvs, More: r.More, Count: r.Count}
}

func (c *Client) putResponse(r *wire.PutResponse) *PutResponse {
	c.strip(r.PrevKv)
	return &PutResponse{Header: ResponseHeader(r.Header), PrevKv: r.PrevKv}
}

func (c *Client) deleteResponse(r *wire.DeleteRangeResponse) *DeleteResponse {
	c.stripKVs(r.PrevKvs)
	return &DeleteResponse{Header: ResponseHeader(r.Header), Deleted: r.Deleted, PrevKvs: r.PrevKvs}
}
