package etcdgw

import (
	"bytes"
	"context"
	"fmt"

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
// decoded copy of the directory is held. WithLimit caps the total;
// WithSort other than by key, and WithCountOnly, make it one request.
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
	pageable := !req.CountOnly && (req.SortTarget == wire.SortByKey || req.SortOrder == wire.SortNone)
	if !pageable {
		var out wire.RangeResponse
		if err := c.rangeCall(ctx, req, op.leader(), nil, &out); err != nil {
			return nil, err
		}
		return c.getResponse(&out), nil
	}
	return c.readPages(ctx, req, op.leader())
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

// readPages reads a range in pages at one revision and joins them.
func (c *Client) readPages(ctx context.Context, req *wire.RangeRequest, leader bool) (*GetResponse, error) {
	var (
		a      wire.Arena
		res    *GetResponse
		total  = req.Limit // 0: no limit
		size   = int64(pageStart)
		descnd = req.SortOrder == wire.SortDescend
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
		err := c.unary(ctx, &rpc{path: wire.PathRange, body: wire.AppendRange(nil, req), idempotent: true, leader: leader},
			func(b []byte, _ *endpoint.Endpoint) error { bodyLen = len(b); return wire.DecodeRange(b, &a, &out) })
		if err != nil {
			return nil, err
		}
		if res == nil {
			res = &GetResponse{Header: ResponseHeader(out.Header), Count: out.Count}
			n := out.Count
			if total > 0 {
				n = min(n, total)
			}
			res.Kvs = make([]*mvccpb.KeyValue, 0, max(n, int64(len(out.Kvs))))
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
		last := out.Kvs[len(out.Kvs)-1].Key
		if descnd {
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
	return res, nil
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
// the serializer refuses, ErrLeaseNotFound, ErrRequestTooLarge, ErrNoSpace.
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
// Options: WithLease.
func (c *Client) SetNX(ctx context.Context, key string, val any, opts ...OpOption) (*TxnResponse, error) {
	return c.setIf(ctx, "SetNX", key, val, opts, setNXOpts, wire.CompareEqual)
}

// SetX writes val to key only if the key exists, in one transaction. Succeeded
// reports that the key existed and was updated (lua-resty-etcd's setx reports
// the opposite). Options: WithLease, WithPrevKV, WithIgnoreValue,
// WithIgnoreLease.
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
// Options: WithPrefix, WithRange, WithFromKey, WithPrevKV.
func (c *Client) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	op := Op{kind: opDelete, key: key}
	if err := op.applyOpts("Delete", deleteOpts, opts); err != nil {
		return nil, err
	}
	return c.deleteOp(ctx, "Delete", &op)
}

// RmDir deletes every key that starts with dir; the empty dir deletes every
// key (under the key prefix). Options: WithPrevKV.
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
// is already compacted, ErrFutureRev if it is beyond the store.
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
	return c.serializer.Unmarshal(value, v)
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
	val, err := c.serializer.Marshal(op.val)
	if err != nil {
		return nil, fmt.Errorf("%w: %s(%q): %w", ErrInvalidArgument, what, op.key, err)
	}
	req.Value = val
	return req, nil
}

func (c *Client) deleteRequest(what string, op *Op) (*wire.DeleteRangeRequest, error) {
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
