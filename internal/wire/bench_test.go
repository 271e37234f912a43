package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protojson"
)

// The decoder benchmarks run on gateway output generated at benchmark start in
// the exact shape of the captured answers (testdata/captured/range-prefix and
// watch-history): field order, int64 as strings, std base64 with padding, a
// PUT event without "type". TestBenchInputsMatchCaptured checks the shape.
// Each benchmark compares, in one run:
//
//	etcdgw    this package's decoder (LineReader + DecodeWatchLine for streams)
//	json      encoding/json into mirror structs (json.Decoder for streams)
//	protojson protojson into etcdserverpb types, given each message's inner
//	          object (the envelope is sliced off for free, which favours it)
//	floor     a byte loop over the whole input plus base64.StdEncoding.Decode
//	          of every key and value, at offsets known in advance: the least
//	          work any decoder of this format must do.

const (
	benchHeader = `{"cluster_id":"7270273127988219493","member_id":"13439018666742310257","revision":"%d","raft_term":"2"}`
	benchValue  = 100 // bytes of a value before base64
)

// benchInput is generated gateway output and where its base64 strings are.
type benchInput struct {
	data  []byte
	items int      // kvs or events
	spans [][2]int // key and value base64 strings
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "/bench/dir/key-%08d", i) }

func benchVal(i int) []byte {
	v := fmt.Appendf(nil, `{"n":%d,"pad":"`, i)
	for len(v) < benchValue-2 {
		v = append(v, 'a'+byte(len(v)%26))
	}
	return append(v, `"}`...)
}

// appendKV writes one kv as the gateway does, recording the base64 spans.
func (in *benchInput) appendKV(b []byte, i, rev int) []byte {
	b = append(b, `{"key":"`...)
	s := len(b)
	b = base64.StdEncoding.AppendEncode(b, benchKey(i))
	in.spans = append(in.spans, [2]int{s, len(b)})
	b = fmt.Appendf(b, `","create_revision":"%d","mod_revision":"%d","version":"1","value":"`, rev, rev)
	s = len(b)
	b = base64.StdEncoding.AppendEncode(b, benchVal(i))
	in.spans = append(in.spans, [2]int{s, len(b)})
	return append(b, `"}`...)
}

// rangeInput is a /kv/range answer of n kvs.
func rangeInput(n int) *benchInput {
	in := &benchInput{items: n}
	b := fmt.Appendf(nil, `{"header":`+benchHeader+`,"kvs":[`, n+10)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = in.appendKV(b, i, i+2)
	}
	in.data = fmt.Appendf(b, `],"count":"%d"}`, n)
	return in
}

// watchInput is a /watch stream of msgs messages of per events each, replaying
// history as etcd does: every message stamped with the current revision.
func watchInput(msgs, per int) *benchInput {
	in := &benchInput{items: msgs * per}
	last := msgs*per + 1
	b := fmt.Appendf(nil, `{"result":{"header":`+benchHeader+`,"watch_id":"0","created":true}}`+"\n", last)
	for m := range msgs {
		b = fmt.Appendf(b, `{"result":{"header":`+benchHeader+`,"watch_id":"0","events":[`, last)
		for e := range per {
			if e > 0 {
				b = append(b, ',')
			}
			i := m*per + e
			b = append(b, `{"kv":`...)
			b = in.appendKV(b, i, i+2)
			b = append(b, '}')
		}
		b = append(b, "]}}\n"...)
	}
	in.data = b
	return in
}

// TestBenchInputsMatchCaptured checks that the generated inputs have the shape
// of real gateway output: the captured answers, with only the data changed.
func TestBenchInputsMatchCaptured(t *testing.T) {
	shape := func(b []byte) string {
		// Keep the structure, drop the data: every string's contents go.
		var out []byte
		in := false
		for _, c := range b {
			switch {
			case c == '"':
				in = !in
				out = append(out, c)
			case !in:
				out = append(out, c)
			}
		}
		return string(out)
	}
	r := rangeInput(1)
	got := shape(r.data)
	want := shape(captured(t, "range-hit.200.json"))
	if got != want {
		t.Errorf("range shape\ngot  %s\nwant %s", got, want)
	}
	w := watchInput(1, 2)
	lines := bytes.Split(bytes.TrimSpace(w.data), []byte("\n"))
	cap := bytes.Split(captured(t, "watch-history.200.ndjson"), []byte("\n"))
	if got, want := shape(lines[0]), shape(cap[0]); got != want {
		t.Errorf("created shape\ngot  %s\nwant %s", got, want)
	}
	// The captured batch's first two events are PUTs like ours.
	if got, want := shape(lines[1]), shape(cap[1]); !bytes.HasPrefix([]byte(want), []byte(got[:len(got)-4])) {
		t.Errorf("events shape\ngot  %s\nwant %s", got, want)
	}
	var m WatchResponse
	if _, err := DecodeWatchLine(lines[1], nil, &m); err != nil || len(m.Events) != 2 ||
		!bytes.Equal(m.Events[1].Kv.Value, benchVal(1)) {
		t.Fatalf("decode: %v %v", err, m.Events)
	}
}

// Mirror structs for encoding/json.
type (
	mirrorHeader struct {
		ClusterID uint64 `json:"cluster_id,string"`
		MemberID  uint64 `json:"member_id,string"`
		Revision  int64  `json:"revision,string"`
		RaftTerm  uint64 `json:"raft_term,string"`
	}
	mirrorKV struct {
		Key            []byte `json:"key"`
		CreateRevision int64  `json:"create_revision,string"`
		ModRevision    int64  `json:"mod_revision,string"`
		Version        int64  `json:"version,string"`
		Value          []byte `json:"value"`
		Lease          int64  `json:"lease,string"`
	}
	mirrorRange struct {
		Header mirrorHeader `json:"header"`
		Kvs    []*mirrorKV  `json:"kvs"`
		More   bool         `json:"more"`
		Count  int64        `json:"count,string"`
	}
	mirrorEvent struct {
		Type   string    `json:"type"`
		Kv     *mirrorKV `json:"kv"`
		PrevKv *mirrorKV `json:"prev_kv"`
	}
	mirrorWatch struct {
		Header          mirrorHeader   `json:"header"`
		WatchID         int64          `json:"watch_id,string"`
		Created         bool           `json:"created"`
		Canceled        bool           `json:"canceled"`
		CompactRevision int64          `json:"compact_revision,string"`
		CancelReason    string         `json:"cancel_reason"`
		Fragment        bool           `json:"fragment"`
		Events          []*mirrorEvent `json:"events"`
	}
	mirrorWatchLine struct {
		Result *mirrorWatch    `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
)

// perItem reports ns/item and allocs/item beside the standard columns. Call it
// right after b.ResetTimer; it returns the function to call after the loop.
func perItem(b *testing.B, in *benchInput) func() {
	b.SetBytes(int64(len(in.data)))
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	return func() {
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		n := float64(b.N) * float64(in.items)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/item")
		b.ReportMetric(float64(ms.Mallocs-mallocs)/n, "allocs/item")
	}
}

// floor does the least work any decoder must: look at every byte (here,
// finding the strings) and decode every key and value.
func floor(b *testing.B, in *benchInput) {
	dst := make([]byte, 4096)
	done := perItem(b, in)
	for b.Loop() {
		quotes := 0
		for _, c := range in.data {
			if c == '"' {
				quotes++
			}
		}
		if quotes == 0 {
			b.Fatal("no strings")
		}
		for _, s := range in.spans {
			if _, err := base64.StdEncoding.Decode(dst, in.data[s[0]:s[1]]); err != nil {
				b.Fatal(err)
			}
		}
	}
	done()
}

func BenchmarkRangeDecode(b *testing.B) {
	in := rangeInput(10000)
	check := func(b *testing.B, n int) {
		if n != in.items {
			b.Fatalf("decoded %d kvs, want %d", n, in.items)
		}
	}
	b.Run("kvs=10000/etcdgw", func(b *testing.B) {
		done := perItem(b, in)
		for b.Loop() {
			var r RangeResponse
			var a Arena
			a.KVHint = in.items
			if err := DecodeRange(in.data, &a, &r); err != nil {
				b.Fatal(err)
			}
			check(b, len(r.Kvs))
		}
		done()
	})
	b.Run("kvs=10000/json", func(b *testing.B) {
		done := perItem(b, in)
		for b.Loop() {
			var r mirrorRange
			if err := json.Unmarshal(in.data, &r); err != nil {
				b.Fatal(err)
			}
			check(b, len(r.Kvs))
		}
		done()
	})
	b.Run("kvs=10000/protojson", func(b *testing.B) {
		opts := protojson.UnmarshalOptions{DiscardUnknown: true}
		done := perItem(b, in)
		for b.Loop() {
			var r etcdserverpb.RangeResponse
			if err := opts.Unmarshal(in.data, &r); err != nil {
				b.Fatal(err)
			}
			check(b, len(r.Kvs))
		}
		done()
	})
	b.Run("kvs=10000/floor", func(b *testing.B) { floor(b, in) })
}

func BenchmarkWatchDecode(b *testing.B) {
	for _, shape := range []struct{ msgs, per int }{{10000, 1}, {100, 100}} {
		in := watchInput(shape.msgs, shape.per)
		name := "msgs=" + strconv.Itoa(shape.msgs) + "x" + strconv.Itoa(shape.per)
		check := func(b *testing.B, n int) {
			if n != in.items {
				b.Fatalf("decoded %d events, want %d", n, in.items)
			}
		}
		b.Run(name+"/etcdgw", func(b *testing.B) {
			done := perItem(b, in)
			for b.Loop() {
				// As the watcher does: the arena emptied and a new response for
				// each message.
				lr := NewLineReader(bytes.NewReader(in.data), 4096, 0)
				n := 0
				var a Arena
				for {
					line, err := lr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					a = Arena{}
					var m WatchResponse
					if st, err := DecodeWatchLine(line, &a, &m); err != nil || st != nil {
						b.Fatal(err, st)
					}
					n += len(m.Events)
				}
				check(b, n)
			}
			done()
		})
		b.Run(name+"/json", func(b *testing.B) {
			done := perItem(b, in)
			for b.Loop() {
				dec := json.NewDecoder(bytes.NewReader(in.data))
				n := 0
				for {
					var m mirrorWatchLine
					err := dec.Decode(&m)
					if err == io.EOF {
						break
					}
					if err != nil || m.Result == nil {
						b.Fatal(err)
					}
					n += len(m.Result.Events)
				}
				check(b, n)
			}
			done()
		})
		b.Run(name+"/protojson", func(b *testing.B) {
			opts := protojson.UnmarshalOptions{DiscardUnknown: true}
			pre, post := []byte(`{"result":`), []byte(`}`)
			done := perItem(b, in)
			for b.Loop() {
				lr := NewLineReader(bytes.NewReader(in.data), 4096, 0)
				n := 0
				for {
					line, err := lr.Next()
					if err == io.EOF {
						break
					}
					if err != nil || !bytes.HasPrefix(line, pre) || !bytes.HasSuffix(line, post) {
						b.Fatal(err)
					}
					var m etcdserverpb.WatchResponse
					if err := opts.Unmarshal(line[len(pre):len(line)-len(post)], &m); err != nil {
						b.Fatal(err)
					}
					n += len(m.Events)
				}
				check(b, n)
			}
			done()
		})
		b.Run(name+"/floor", func(b *testing.B) { floor(b, in) })
	}
}
