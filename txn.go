package etcdgw

import (
	"context"
	"fmt"
	"reflect"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

type opKind uint8

const (
	opNone opKind = iota
	opGet
	opPut
	opDelete
	opTxn
)

// Op is one operation of a transaction, made by OpGet, OpPut, OpDelete or
// OpTxn. The per-operation options (OpOption) also work on it.
type Op struct {
	kind opKind
	key  string
	val  any
	end  string

	opts                 opt
	err                  error
	rev, limit           int64
	sortTarget           SortTarget
	sortOrder            SortOrder
	lease                LeaseID
	watchID              int64
	minModRev, maxModRev int64
	minCreateRev         int64
	maxCreateRev         int64
	cmps                 []Cmp
	thenOps, elseOps     []Op
}

func (op *Op) leader() bool { return op.opts&optRequireLeader != 0 }

// The options an Op of each kind accepts inside a transaction.
const (
	opGetOpts    = rangeOpts &^ optRequireLeader
	opPutOpts    = putOpts &^ optRequireLeader
	opDeleteOpts = deleteOpts &^ optRequireLeader
)

// OpGet is a Get inside a transaction. It takes Get's options.
func OpGet(key string, opts ...OpOption) Op {
	op := Op{kind: opGet, key: key}
	op.err = op.applyOpts("OpGet", opGetOpts, opts)
	return op
}

// OpPut is a Set inside a transaction; val goes through the client's
// serializer when the transaction is committed (a RawValue is written as is).
// It takes Set's options.
func OpPut(key string, val any, opts ...OpOption) Op {
	op := Op{kind: opPut, key: key, val: val}
	op.err = op.applyOpts("OpPut", opPutOpts, opts)
	return op
}

// OpDelete is a Delete inside a transaction. It takes Delete's options; as
// Delete, without a key prefix the empty key with WithPrefix or WithFromKey
// makes Commit fail with ErrInvalidArgument.
func OpDelete(key string, opts ...OpOption) Op {
	op := Op{kind: opDelete, key: key}
	op.err = op.applyOpts("OpDelete", opDeleteOpts, opts)
	return op
}

// OpTxn is a transaction nested in another: if every compare of cmps holds,
// thenOps run, else elseOps.
func OpTxn(cmps []Cmp, thenOps, elseOps []Op) Op {
	return Op{kind: opTxn, cmps: cmps, thenOps: thenOps, elseOps: elseOps}
}

// Cmp is a condition of a transaction, made by Compare on Value, Version,
// CreateRevision, ModRevision or LeaseValue.
type Cmp struct {
	target  int
	key     string
	end     string
	prefix  bool
	result  int
	op      string
	operand any
	hasOp   bool
}

// Value compares the key's value; the operand goes through the client's
// serializer (a RawValue is compared as is), so Compare(Value(k), "=", v)
// holds when k was Set to v.
func Value(key string) Cmp { return Cmp{target: wire.TargetValue, key: key} }

// Version compares the key's version: 0 for a key that does not exist, then
// 1, 2, ... with each write.
func Version(key string) Cmp { return Cmp{target: wire.TargetVersion, key: key} }

// CreateRevision compares the revision at which the key was created: 0 for a
// key that does not exist.
func CreateRevision(key string) Cmp { return Cmp{target: wire.TargetCreate, key: key} }

// ModRevision compares the revision of the key's last write: 0 for a key that
// does not exist.
func ModRevision(key string) Cmp { return Cmp{target: wire.TargetMod, key: key} }

// LeaseValue compares the lease ID the key is attached to: 0 for none.
func LeaseValue(key string) Cmp { return Cmp{target: wire.TargetLease, key: key} }

// Compare completes a condition: result is "=", "!=", "<" or ">", and v the
// operand, an integer (or LeaseID) for Version, CreateRevision, ModRevision and
// LeaseValue, any value the serializer takes for Value. A bad result or operand
// makes Commit fail with ErrInvalidArgument.
func Compare(c Cmp, result string, v any) Cmp {
	c.op, c.operand, c.hasOp = result, v, true
	switch result {
	case "=", "==":
		c.result = wire.CompareEqual
	case "!=":
		c.result = wire.CompareNotEqual
	case "<":
		c.result = wire.CompareLess
	case ">":
		c.result = wire.CompareGreater
	default:
		c.result = -1
	}
	return c
}

// WithPrefix makes the condition hold for every key that starts with the key.
func (c Cmp) WithPrefix() Cmp {
	c.prefix, c.end = true, ""
	return c
}

// WithRange makes the condition hold for every key in [key, end).
func (c Cmp) WithRange(end string) Cmp {
	c.prefix, c.end = false, end
	return c
}

// Txn is a transaction being built: If, Then and Else, in that order, then
// Commit. It carries the ctx it was made with, like an http.Request.
type Txn struct {
	c                *Client
	ctx              context.Context
	cmps             []Cmp
	thenOps, elseOps []Op
	stage            int // 1 after If, 2 after Then, 3 after Else
	err              error
}

// TxnResponse is the answer of a transaction, SetNX and SetX.
type TxnResponse struct {
	Header ResponseHeader
	// Succeeded reports that every compare held: the Then operations ran, else
	// the Else ones did.
	Succeeded bool
	// Responses hold the answers of the operations that ran, in order.
	Responses []OpResponse
}

// OpResponse is the answer of one operation of a transaction: exactly one
// field is set.
type OpResponse struct {
	Get    *GetResponse
	Put    *PutResponse
	Delete *DeleteResponse
	Txn    *TxnResponse
}

// Txn starts a transaction that runs with ctx:
//
//	resp, err := c.Txn(ctx).
//		If(etcdgw.Compare(etcdgw.Value("k"), "=", "old")).
//		Then(etcdgw.OpPut("k", "new")).
//		Else(etcdgw.OpGet("k")).
//		Commit()
func (c *Client) Txn(ctx context.Context) *Txn { return &Txn{c: c, ctx: ctx} }

// If adds conditions; all must hold for Then to run. It must come before Then
// and Else.
func (t *Txn) If(cs ...Cmp) *Txn {
	if t.stage > 1 && t.err == nil {
		t.err = invalidArgument("Txn: If after Then or Else")
	}
	t.stage = max(t.stage, 1)
	t.cmps = append(t.cmps, cs...)
	return t
}

// Then adds the operations that run when the conditions hold. It must come
// before Else.
func (t *Txn) Then(ops ...Op) *Txn {
	if t.stage > 2 && t.err == nil {
		t.err = invalidArgument("Txn: Then after Else")
	}
	t.stage = max(t.stage, 2)
	t.thenOps = append(t.thenOps, ops...)
	return t
}

// Else adds the operations that run when a condition fails.
func (t *Txn) Else(ops ...Op) *Txn {
	t.stage = 3
	t.elseOps = append(t.elseOps, ops...)
	return t
}

// Commit runs the transaction. Errors: ErrInvalidArgument and ErrInvalidOption
// for a bad compare or operation (nothing is sent), ErrTooManyOps,
// ErrDuplicateKey, ErrRequestTooLarge, ErrCompacted; for a transaction with a
// write, ErrOutcomeUnknown when it was sent and not confirmed (it may have
// been applied); ErrUnavailable or ErrNoHealthyEndpoint when no member took
// it. A read-only transaction is retried on another member instead.
func (t *Txn) Commit() (*TxnResponse, error) {
	if t.err != nil {
		return nil, t.err
	}
	req, readOnly, err := t.c.txnRequest(t.cmps, t.thenOps, t.elseOps, 0)
	if err != nil {
		return nil, err
	}
	return t.c.commit(t.ctx, req, readOnly, false)
}

// commit sends a transaction; a read-only one may be retried on another endpoint.
func (c *Client) commit(ctx context.Context, req *wire.TxnRequest, readOnly, leader bool) (*TxnResponse, error) {
	var a wire.Arena
	var out wire.TxnResponse
	err := c.unary(ctx, &rpc{path: wire.PathTxn, body: wire.AppendTxn(nil, req), idempotent: readOnly, leader: leader},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeTxn(b, &a, &out) })
	if err != nil {
		return nil, err
	}
	return c.txnResponse(&out), nil
}

// maxTxnDepth bounds nested OpTxn; etcd's own limits stop far earlier.
const maxTxnDepth = 64

// txnRequest builds the wire form of a transaction, applying the key prefix
// and the serializer, and reports whether it only reads.
func (c *Client) txnRequest(cmps []Cmp, thenOps, elseOps []Op, depth int) (*wire.TxnRequest, bool, error) {
	if depth > maxTxnDepth {
		return nil, false, invalidArgument("Txn: OpTxn nested deeper than %d", maxTxnDepth)
	}
	req := &wire.TxnRequest{Compare: make([]wire.Compare, len(cmps))}
	for i := range cmps {
		if err := c.compare(&cmps[i], &req.Compare[i]); err != nil {
			return nil, false, err
		}
	}
	readOnly := true
	var err error
	if req.Success, err = c.requestOps(thenOps, depth, &readOnly); err != nil {
		return nil, false, err
	}
	if req.Failure, err = c.requestOps(elseOps, depth, &readOnly); err != nil {
		return nil, false, err
	}
	return req, readOnly, nil
}

func (c *Client) requestOps(ops []Op, depth int, readOnly *bool) ([]wire.RequestOp, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	out := make([]wire.RequestOp, len(ops))
	for i := range ops {
		op := &ops[i]
		if op.err != nil {
			return nil, op.err
		}
		var err error
		switch op.kind {
		case opGet:
			out[i].Range, err = c.rangeRequest("OpGet", op)
		case opPut:
			*readOnly = false
			out[i].Put, err = c.putRequest("OpPut", op)
		case opDelete:
			*readOnly = false
			out[i].Delete, err = c.deleteRequest("OpDelete", op)
		case opTxn:
			var ro bool
			out[i].Txn, ro, err = c.txnRequest(op.cmps, op.thenOps, op.elseOps, depth+1)
			*readOnly = *readOnly && ro
		default:
			err = invalidArgument("Txn: zero Op; use OpGet, OpPut, OpDelete or OpTxn")
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// compare builds the wire form of one condition.
func (c *Client) compare(cmp *Cmp, w *wire.Compare) error {
	if !cmp.hasOp {
		return invalidArgument("Txn: condition on key %q has no Compare", cmp.key)
	}
	if cmp.result < 0 {
		return invalidArgument("Txn: compare on key %q: unknown operator %q (want =, !=, < or >)", cmp.key, cmp.op)
	}
	op := Op{key: cmp.key, end: cmp.end}
	switch {
	case cmp.prefix:
		op.opts = optPrefix
	case cmp.end != "":
		op.opts = optRange
	}
	key, end, err := c.keyRange("Compare", &op)
	if err != nil {
		return err
	}
	*w = wire.Compare{Result: cmp.result, Target: cmp.target, Key: key, RangeEnd: end}
	if cmp.target == wire.TargetValue {
		if w.Value, err = marshal(c.serializer, cmp.operand); err != nil {
			return fmt.Errorf("%w: compare on key %q: %w", ErrInvalidArgument, cmp.key, err)
		}
		return nil
	}
	n, ok := toInt64(cmp.operand)
	if !ok {
		return invalidArgument("Txn: compare on key %q: operand %v (%T) is not an integer", cmp.key, cmp.operand, cmp.operand)
	}
	w.Number = n
	return nil
}

// toInt64 converts any integer type, LeaseID included.
func toInt64(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > 1<<63-1 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}

func (c *Client) txnResponse(r *wire.TxnResponse) *TxnResponse {
	out := &TxnResponse{Header: ResponseHeader(r.Header), Succeeded: r.Succeeded}
	if len(r.Responses) > 0 {
		out.Responses = make([]OpResponse, len(r.Responses))
	}
	for i := range r.Responses {
		w := &r.Responses[i]
		switch {
		case w.Range != nil:
			out.Responses[i].Get = c.getResponse(w.Range)
		case w.Put != nil:
			out.Responses[i].Put = c.putResponse(w.Put)
		case w.Delete != nil:
			out.Responses[i].Delete = c.deleteResponse(w.Delete)
		case w.Txn != nil:
			out.Responses[i].Txn = c.txnResponse(w.Txn)
		}
	}
	return out
}
