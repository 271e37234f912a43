package cache

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

type benchValue struct {
	Host     string `json:"host"`
	Upstream string `json:"upstream"`
	Pad      string `json:"pad"`
}

// benchResponses are watch responses of 100 updates each over 20,000 keys,
// with 256-byte JSON values, at increasing revisions.
func benchResponses(b *testing.B, n int) []etcdgw.WatchResponse {
	pad := strings.Repeat("x", 200)
	out := make([]etcdgw.WatchResponse, 0, n)
	rev := int64(1)
	for i := range n {
		evs := make([]*mvccpb.Event, 0, 100)
		for j := range 100 {
			rev++
			v, err := json.Marshal(benchValue{Host: fmt.Sprint(i, j), Upstream: "10.0.0.1:80", Pad: pad})
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(fmt.Sprintf("p/%06d", (i*100+j)%20000)), Value: v, CreateRevision: 2, ModRevision: rev}})
		}
		out = append(out, etcdgw.WatchResponse{Header: etcdgw.ResponseHeader{Revision: rev}, Events: evs})
	}
	return out
}

// BenchmarkApply is the cost of applying watch events with one handler that
// keeps up, against a hand-written map loop decoding with encoding/json; no
// network, so what the cache adds is all that differs.
func BenchmarkApply(b *testing.B) {
	const responses = 200 // 20,000 events
	resps := benchResponses(b, responses)
	c, err := etcdgw.New(etcdgw.WithEndpoints("http://127.0.0.1:1"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("cache", func(b *testing.B) {
		for range b.N {
			m, _ := New[benchValue](c, "p/")
			var seen int
			done := make(chan struct{})
			m.AddHandler(func(bt Batch[benchValue]) {
				seen += len(bt.Events)
				if seen == responses*100 {
					close(done)
				}
			})
			m.state = stateStarted
			m.runHandler(m.handlers[0])
			for i := range resps {
				m.apply(&resps[i])
			}
			<-done
			m.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*responses*100), "ns/event")
	})
	b.Run("handwritten", func(b *testing.B) {
		for range b.N {
			m := map[string]benchValue{}
			for _, r := range resps {
				for _, ev := range r.Events {
					var v benchValue
					if err := json.Unmarshal(ev.Kv.Value, &v); err != nil {
						b.Fatal(err)
					}
					m[string(ev.Kv.Key)] = v
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*responses*100), "ns/event")
	})
}
