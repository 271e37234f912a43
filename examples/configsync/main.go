// Command configsync shows the pattern gateways and controllers use to mirror
// a directory of etcd: read it whole with ReadDir, keep it in a map, then
// WatchDir from the read revision + 1 and apply each event. If the watch's
// resume point was compacted away (ErrCompacted), read the directory again.
// Nothing between the read and the watch is missed, and a broken connection
// is resumed by the client without losing or repeating an event.
//
// With ETCD_ENDPOINTS unset it starts an embedded etcd of its own; a writer
// goroutine changes the directory and the program prints the map as it
// follows, then exits once it has seen the writer's last change.
//
//	go run ./examples/configsync
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

const dir = "routes/"

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	endpoints := os.Getenv("ETCD_ENDPOINTS")
	if endpoints == "" {
		s, err := etcdtest.StartServer(etcdtest.Config{Name: "configsync"})
		if err != nil {
			return err
		}
		defer s.Close()
		endpoints = s.Endpoint()
	}
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(strings.Split(endpoints, ",")...),
		etcdgw.WithKeyPrefix("/etcdgw-configsync/"),
		etcdgw.WithSerializer(etcdgw.Raw),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.RmDir(ctx, ""); err != nil {
		return err
	}
	for _, r := range []string{"a", "b"} {
		if _, err := c.Set(ctx, dir+r, "backend-"+r+"-v1"); err != nil {
			return err
		}
	}

	// The writer changes the directory while the mirror follows it.
	last := make(chan int64, 1)
	go func() {
		var rev int64
		for i, step := range []struct{ op, key, val string }{
			{"set", "c", "backend-c-v1"}, {"set", "a", "backend-a-v2"}, {"delete", "b", ""},
			{"set", "d", "backend-d-v1"}, {"set", "c", "backend-c-v2"},
		} {
			time.Sleep(100 * time.Millisecond)
			if step.op == "set" {
				r, err := c.Set(ctx, dir+step.key, step.val)
				if err != nil {
					log.Fatal(err)
				}
				rev = r.Header.Revision
			} else {
				r, err := c.Delete(ctx, dir+step.key)
				if err != nil {
					log.Fatal(err)
				}
				rev = r.Header.Revision
			}
			fmt.Printf("writer: step %d: %s %s\n", i+1, step.op, step.key)
		}
		last <- rev
	}()

	m := &mirror{c: c, routes: map[string]string{}}
	return m.follow(ctx, last)
}

// mirror is a local copy of the directory.
type mirror struct {
	c      *etcdgw.Client
	routes map[string]string
	rev    int64 // the revision the map reflects
}

// load reads the whole directory at one revision.
func (m *mirror) load(ctx context.Context) error {
	r, err := m.c.ReadDir(ctx, dir)
	if err != nil {
		return err
	}
	clear(m.routes)
	for _, kv := range r.Kvs {
		m.routes[strings.TrimPrefix(string(kv.Key), dir)] = string(kv.Value)
	}
	m.rev = r.Header.Revision
	m.print("loaded")
	return nil
}

// follow keeps the map in step with etcd until it reflects revision <-last.
func (m *mirror) follow(ctx context.Context, last <-chan int64) error {
	if err := m.load(ctx); err != nil {
		return err
	}
	target := int64(-1)
	for {
		wctx, stop := context.WithCancel(ctx)
		watch := m.c.WatchDir(wctx, dir, etcdgw.WithRev(m.rev+1))
		err := m.apply(watch, last, &target)
		stop()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, etcdgw.ErrCompacted):
			// History we needed is gone: start over from a fresh read.
			if err := m.load(ctx); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// apply applies the watch's events to the map; it returns nil once the map
// reflects the target revision.
func (m *mirror) apply(watch etcdgw.WatchChan, last <-chan int64, target *int64) error {
	for {
		select {
		case t := <-last:
			*target = t
		case resp, ok := <-watch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			for _, ev := range resp.Events {
				name := strings.TrimPrefix(string(ev.Kv.Key), dir)
				if ev.Type == mvccpb.DELETE {
					delete(m.routes, name)
				} else {
					m.routes[name] = string(ev.Kv.Value)
				}
				m.rev = ev.Kv.ModRevision
			}
			if len(resp.Events) > 0 {
				m.print("watch")
			}
		}
		if *target >= 0 && m.rev >= *target {
			return nil
		}
	}
}

func (m *mirror) print(why string) {
	names := make([]string, 0, len(m.routes))
	for n := range m.routes {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%s", n, m.routes[n])
	}
	fmt.Printf("mirror (%s, revision %d):%s\n", why, m.rev, b.String())
}
