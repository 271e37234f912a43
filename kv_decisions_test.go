package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw/internal/wire"
)

func TestReadDirPlan(t *testing.T) {
	const (
		key, ver, create, mod, val = wire.SortByKey, wire.SortByVersion, wire.SortByCreate, wire.SortByMod, wire.SortByValue
		none, asc, desc            = wire.SortNone, wire.SortAscend, wire.SortDescend
	)
	tests := []struct {
		target, order int
		limit         int64
		countOnly     bool
		want          dirRead
	}{
		{key, none, 0, false, dirPages},
		{key, asc, 0, false, dirPages},
		{key, none, 10, false, dirPages},
		{key, asc, 10, false, dirPages},
		{key, desc, 0, false, dirSorted},
		{key, desc, 10, false, dirBackward},
		{ver, none, 0, false, dirSorted}, // etcd sorts (target, NONE) ascending
		{create, asc, 0, false, dirSorted},
		{mod, desc, 0, false, dirSorted},
		{val, none, 0, false, dirSorted},
		{ver, none, 10, false, dirOne},
		{val, desc, 10, false, dirOne},
		{key, none, 0, true, dirOne},
		{mod, desc, 0, true, dirOne},
	}
	for _, tt := range tests {
		if got := readDirPlan(tt.target, tt.order, tt.limit, tt.countOnly); got != tt.want {
			t.Errorf("readDirPlan(%d, %d, %d, %v) = %d, want %d", tt.target, tt.order, tt.limit, tt.countOnly, got, tt.want)
		}
	}
}

func TestRestartDir(t *testing.T) {
	compacted := &Error{Code: 11, HTTPStatus: 400, kind: wire.KindCompacted}
	denied := &Error{Code: 7, HTTPStatus: 403, kind: wire.KindPermissionDenied}
	unavailable := &Error{Code: 14, HTTPStatus: 503, kind: wire.KindUnavailable}
	refused := errors.New("dial tcp: connection refused")
	tests := []struct {
		err                            error
		later, callerRev, serializable bool
		want                           bool
	}{
		{compacted, true, false, false, true},
		{fmt.Errorf("etcdgw: wrapped: %w", compacted), true, false, true, true},
		{compacted, false, false, false, false}, // the first page: unary's to retry
		{compacted, true, true, false, false},   // the caller's revision is gone
		{refused, true, false, true, true},      // the pinned member failed
		{unavailable, true, false, true, true},
		{refused, true, false, false, false}, // unpinned: unary tried the others
		{refused, true, true, true, false},
		{denied, true, false, true, false},
		{context.DeadlineExceeded, true, false, true, false},
		{fmt.Errorf("%w: %w", ErrUnavailable, context.DeadlineExceeded), true, false, true, true},
		{fmt.Errorf("%w: %w", ErrNoHealthyEndpoint, refused), true, false, true, true},
		{fmt.Errorf("%w: %w", ErrClosed, ErrUnavailable), true, false, true, false},
		{ErrClosed, true, false, true, false},
		{ErrResponseTooLarge, true, false, true, false},
		{fmt.Errorf("%w: bad", ErrMalformedResponse), true, false, true, false},
	}
	for _, tt := range tests {
		if got := restartDir(tt.err, tt.later, tt.callerRev, tt.serializable); got != tt.want {
			t.Errorf("restartDir(%v, later %v, callerRev %v, serializable %v) = %v, want %v", tt.err, tt.later, tt.callerRev, tt.serializable, got, tt.want)
		}
	}
}

func TestJoinedCap(t *testing.T) {
	tests := []struct {
		count, limit int64
		got, want    int
	}{
		{1200, 0, 500, 1200},
		{1200, 700, 500, 700},
		{10, 0, 10, 10},
		{0, 0, 0, 0},
		{-5, 0, 3, 3},                          // a negative count: what the page holds
		{2, 0, 3, 3},                           // fewer than the page holds
		{math.MaxInt64, 0, 2, 2 + maxJoinHint}, // absurd: capped
		{math.MaxInt64, math.MaxInt64, 0, maxJoinHint},
		{1 << 40, 1 << 30, 500, 500 + maxJoinHint},
	}
	for _, tt := range tests {
		if got := joinedCap(tt.count, tt.limit, tt.got); got != tt.want {
			t.Errorf("joinedCap(%d, %d, %d) = %d, want %d", tt.count, tt.limit, tt.got, got, tt.want)
		}
	}
}

func TestPageInOrder(t *testing.T) {
	page := func(ks ...string) []*mvccpb.KeyValue {
		var kvs []*mvccpb.KeyValue
		for _, k := range ks {
			kvs = append(kvs, &mvccpb.KeyValue{Key: []byte(k)})
		}
		return kvs
	}
	b := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	tests := []struct {
		kvs               []*mvccpb.KeyValue
		after, start, end string
		backward, want    bool
	}{
		{page("a", "b", "c"), "", "a", "d", false, true},
		{page(), "", "a", "d", false, true},
		{page("b", "a"), "", "a", "d", false, false},
		{page("a", "a"), "", "a", "d", false, false},
		{page("c", "d"), "b", "a", "e", false, true},
		{page("b", "c"), "b", "a", "e", false, false}, // repeats the last key
		{page("a"), "b", "a", "e", false, false},
		{page("x"), "", "a", "d", false, false},    // past the end
		{page("0"), "", "a", "d", false, false},    // before the start
		{page("zz"), "", "a", "\x00", false, true}, // no end
		{page("c", "b"), "", "a", "d", true, true},
		{page("c", "b"), "c", "a", "d", true, false}, // backwards, repeats
		{page("b", "c"), "", "a", "d", true, false},
	}
	for _, tt := range tests {
		if got := pageInOrder(tt.kvs, b(tt.after), []byte(tt.start), []byte(tt.end), tt.backward); got != tt.want {
			t.Errorf("pageInOrder(%v, after %q, [%q, %q), backward %v) = %v, want %v", tt.kvs, tt.after, tt.start, tt.end, tt.backward, got, tt.want)
		}
	}
}

func TestWipesAll(t *testing.T) {
	tests := []struct {
		key, end  string
		opts      opt
		keyPrefix bool
		want      bool
	}{
		{"", "", optPrefix, false, true},
		{"", "", optFromKey, false, true},
		{"", "", optPrefix | optPrevKV, false, true},
		{"", "\x00", optRange, false, true}, // WithRange("\x00") is WithFromKey
		{"", "", optPrefix, true, false},    // the client's whole namespace
		{"", "", optFromKey, true, false},
		{"\x00", "", optFromKey, false, false}, // a deliberate wipe
		{"a", "", optPrefix, false, false},
		{"", "b", optRange, false, false},
		{"", "", 0, false, false}, // an empty key: ErrKeyNotProvided
	}
	for _, tt := range tests {
		if got := wipesAll(tt.key, tt.end, tt.opts, tt.keyPrefix); got != tt.want {
			t.Errorf("wipesAll(%q, %q, %b, %v) = %v, want %v", tt.key, tt.end, tt.opts, tt.keyPrefix, got, tt.want)
		}
	}
}
