package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/cache"
)

// benchKeys is the size of the benchmark's prefix: 20,000 keys of 256-byte
// JSON values (100,000 works too, but is heavy on a small machine).
const benchKeys = 20000

type benchRoute struct {
	Host     string `json:"host"`
	Upstream string `json:"upstream"`
	Pad      string `json:"pad"`
}

// fillBench writes benchKeys keys under p/ in transactions of 100 puts.
func fillBench(b *testing.B, c *etcdgw.Client) {
	ctx := context.Background()
	pad := strings.Repeat("x", 256-len(`{"host":"h00000.example.com","upstream":"10.0.0.1:80","pad":""}`))
	for i := 0; i < benchKeys; i += 100 {
		ops := make([]etcdgw.Op, 0, 100)
		for j := i; j < i+100; j++ {
			ops = append(ops, etcdgw.OpPut(fmt.Sprintf("p/%06d", j), benchRoute{Host: fmt.Sprintf("h%05d.example.com", j%100000), Upstream: "10.0.0.1:80", Pad: pad}))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkSync is the time to mirror a 20,000-key prefix and the heap each
// key then holds: the cache against a hand-written ReadDir into a map of
// values decoded with encoding/json.
func BenchmarkSync(b *testing.B) {
	c := newClient(b)
	fillBench(b, c)
	ctx := context.Background()
	b.Run("cache", func(b *testing.B) {
		var heap uint64
		for range b.N {
			before := heapNow()
			m, err := cache.New[benchRoute](c, "p/")
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Start(ctx); err != nil {
				b.Fatal(err)
			}
			if m.Len() != benchKeys {
				b.Fatalf("%d keys", m.Len())
			}
			b.StopTimer()
			heap += heapNow() - before
			m.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(heap)/float64(b.N)/benchKeys, "heap-B/key")
	})
	b.Run("handwritten", func(b *testing.B) {
		var heap uint64
		for range b.N {
			before := heapNow()
			resp, err := c.ReadDir(ctx, "p/")
			if err != nil {
				b.Fatal(err)
			}
			m := make(map[string]benchRoute, len(resp.Kvs))
			for _, kv := range resp.Kvs {
				var v benchRoute
				if err := json.Unmarshal(kv.Value, &v); err != nil {
					b.Fatal(err)
				}
				m[string(kv.Key)] = v
			}
			if len(m) != benchKeys {
				b.Fatalf("%d keys", len(m))
			}
			b.StopTimer()
			heap += heapNow() - before
			runtime.KeepAlive(m)
			b.StartTimer()
		}
		b.ReportMetric(float64(heap)/float64(b.N)/benchKeys, "heap-B/key")
	})
}
