package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func item(key string, create, mod int64) *Item[string] {
	return &Item[string]{Key: key, KV: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, ModRevision: mod}}
}

func types(evs []Event[string]) []EventType {
	var out []EventType
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestNetChange(t *testing.T) {
	cases := []struct {
		name          string
		before, after *Item[string]
		want          []EventType
	}{
		{"absent both", nil, nil, nil},
		{"created", nil, item("k", 5, 5), []EventType{Added}},
		{"deleted", item("k", 2, 3), nil, []EventType{Deleted}},
		{"updated", item("k", 2, 3), item("k", 2, 7), []EventType{Updated}},
		{"unchanged", item("k", 2, 3), item("k", 2, 3), nil},
		{"deleted then created", item("k", 2, 3), item("k", 6, 6), []EventType{Deleted, Added}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, types(netChange("k", tc.before, tc.after)))
		})
	}
}

func TestMergeNetDeltaPerKey(t *testing.T) {
	a1, a2 := item("a", 2, 2), item("a", 2, 4)
	b1 := item("b", 3, 3)
	c1 := item("c", 5, 5)
	d0, d1 := item("d", 1, 1), item("d", 7, 7)
	first := Batch[string]{Revision: 5, Events: []Event[string]{
		{Type: Updated, Key: "a", Old: a1, New: a2},
		{Type: Deleted, Key: "b", Old: b1},
		{Type: Added, Key: "c", New: c1},
		{Type: Deleted, Key: "d", Old: d0},
	}}
	second := Batch[string]{Revision: 8, Events: []Event[string]{
		{Type: Deleted, Key: "a", Old: a2},
		{Type: Deleted, Key: "c", Old: c1}, // created then deleted: nothing
		{Type: Added, Key: "d", New: d1},   // deleted then created
	}}
	m := merge(first, second)
	assert.Equal(t, int64(8), m.Revision)
	assert.False(t, m.Relist)
	var got []string
	for _, e := range m.Events {
		got = append(got, e.Key+":"+e.Type.String())
	}
	assert.Equal(t, []string{"a:deleted", "b:deleted", "d:deleted", "d:added"}, got)
	assert.Same(t, a1, m.Events[0].Old, "Old is what the handler was last given")
	assert.True(t, merge(Batch[string]{Relist: true}, second).Relist)
}

func TestProgressSafe(t *testing.T) {
	cases := map[string]bool{
		"3.4.24": false, "3.4.25": true, "3.5.7": false, "3.5.8": true, "3.5.21": true,
		"3.6.0": true, "3.7.3": true, "3.3.27": false, "4.0.0": true, "3.6.0-alpha.0": true,
		"3.5.8-rc.1": true, "": false, "3.5": false, "x.y.z": false,
	}
	for v, want := range cases {
		assert.Equal(t, want, progressSafe(v), v)
	}
}
