package wire

import "go.etcd.io/etcd/api/v3/mvccpb"

// Chunk sizes of an Arena. A byte chunk is at most maxByteChunk; a value larger
// than bigValue gets an allocation of its own rather than a chunk.
const (
	maxByteChunk = 64 << 10
	bigValue     = maxByteChunk / 4
	maxKVChunk   = 1024
	maxEvChunk   = 256
)

// Arena hands out the memory of decoded responses in slabs: key and value
// bytes from byte chunks, KeyValue and Event structs from struct chunks. One
// arena may serve several responses (the pages of one ReadDir); whatever it hands
// out stays valid after the arena is dropped. The zero Arena is ready to use.
//
// A retained value keeps its chunk alive: chunks are sized by what the response
// being decoded can still need, so a response does not pin more than about its
// own size.
type Arena struct {
	buf     []byte
	kvs     []mvccpb.KeyValue
	evs     []eventSlot
	kvChunk int
	evChunk int

	// KVHint, when positive, is how many KeyValues the next struct chunk should
	// hold: a ReadDir page knows its limit, a single-key Get knows 1.
	KVHint int

	evHint int // as KVHint, for events: the decoder's guess of a batch's length
}

// eventSlot puts an Event and its KeyValue in one allocation.
type eventSlot struct {
	ev mvccpb.Event
	kv mvccpb.KeyValue
}

// alloc returns n bytes; bound is an upper limit of what the response being
// decoded can still need, including these n bytes.
func (a *Arena) alloc(n, bound int) []byte {
	if n > bigValue {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		size := min(bound, maxByteChunk)
		a.buf = make([]byte, 0, max(size, n))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}

func (a *Arena) kv() *mvccpb.KeyValue {
	if len(a.kvs) == cap(a.kvs) {
		size := a.KVHint
		if size > 0 {
			a.KVHint = 0
			size = min(size, maxKVChunk)
		} else {
			size = min(max(a.kvChunk*2, 8), maxKVChunk)
		}
		a.kvChunk = size
		a.kvs = make([]mvccpb.KeyValue, 0, size)
	}
	a.kvs = a.kvs[:len(a.kvs)+1]
	return &a.kvs[len(a.kvs)-1]
}

func (a *Arena) event() *mvccpb.Event {
	if len(a.evs) == cap(a.evs) {
		size := min(max(a.evChunk*2, 8), maxEvChunk)
		if a.evHint > 0 {
			size = min(a.evHint, maxEvChunk)
			a.evHint = 0
		}
		a.evChunk = size
		a.evs = make([]eventSlot, 0, size)
	}
	a.evs = a.evs[:len(a.evs)+1]
	s := &a.evs[len(a.evs)-1]
	s.ev.Kv = &s.kv
	return &s.ev
}
