package concurrency

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

func TestKeyFor(t *testing.T) {
	assert.Equal(t, "lock/694d8d5d2f7a2b0c", keyFor("lock", 0x694d8d5d2f7a2b0c), "clientv3's %x of the lease")
	assert.Equal(t, "a/b/1", keyFor("a/b", 1))
}

func TestClassifyWatch(t *testing.T) {
	put := &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k")}}
	del := &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("k")}}
	for _, tc := range []struct {
		name   string
		events []*mvccpb.Event
		own    bool
		want   waitOutcome
	}{
		{"created, before", nil, false, waitGoOn},
		{"created, own", nil, true, waitGoOn},
		{"put, before", []*mvccpb.Event{put}, false, waitGoOn},
		{"put, own", []*mvccpb.Event{put}, true, waitGoOn},
		{"delete, before: read again", []*mvccpb.Event{del}, false, waitReread},
		{"delete, own: lost", []*mvccpb.Event{del}, true, waitLost},
		{"put then delete, own", []*mvccpb.Event{put, del}, true, waitLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := classifyWatch(etcdgw.WatchResponse{Events: tc.events}, tc.own)
			assert.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
