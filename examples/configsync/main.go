// Command configsync shows how gateways and controllers mirror a directory of
// etcd with package cache: it lists the directory at one revision, watches it
// from the next, and hands each change to a handler as one batch (a router
// would be rebuilt once per batch). Nothing between the list and the watch is
// missed, a broken connection is resumed without losing or repeating an
// event, and a resume point lost to compaction is recovered by listing again
// and delivering only what changed.
//
// With ETCD_ENDPOINTS unset it starts an embedded etcd of its own; a writer
// changes the directory, and the program prints each batch and the mirror as
// it follows, then exits once the mirror holds the writer's last change.
//
//	go run ./examples/configsync
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/cache"
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

	routes, err := cache.New[string](c, dir)
	if err != nil {
		return err
	}
	defer routes.Close()
	routes.AddHandler(func(b cache.Batch[string]) {
		for _, e := range b.Events {
			switch e.Type {
			case cache.Deleted:
				fmt.Printf("batch at revision %d: %s %s\n", b.Revision, e.Type, e.Key)
			default:
				fmt.Printf("batch at revision %d: %s %s=%s\n", b.Revision, e.Type, e.Key, e.New.Value)
			}
		}
	})
	if err := routes.Start(ctx); err != nil {
		return err
	}
	show(routes, "listed")

	var last int64
	for i, step := range []struct{ op, key, val string }{
		{"set", "c", "backend-c-v1"}, {"set", "a", "backend-a-v2"}, {"delete", "b", ""},
		{"set", "d", "backend-d-v1"}, {"set", "c", "backend-c-v2"},
	} {
		if step.op == "set" {
			r, err := c.Set(ctx, dir+step.key, step.val)
			if err != nil {
				return err
			}
			last = r.Header.Revision
		} else {
			r, err := c.Delete(ctx, dir+step.key)
			if err != nil {
				return err
			}
			last = r.Header.Revision
		}
		fmt.Printf("writer: step %d: %s %s\n", i+1, step.op, step.key)
	}
	// Read your own writes: wait until the mirror holds the last one.
	if err := routes.WaitForRevision(ctx, last); err != nil {
		return err
	}
	show(routes, "followed")
	return nil
}

func show(routes *cache.Cache[string], why string) {
	var b strings.Builder
	for _, it := range routes.List() {
		fmt.Fprintf(&b, " %s=%s", strings.TrimPrefix(it.Key, dir), it.Value)
	}
	fmt.Printf("mirror (%s, revision %d):%s\n", why, routes.Revision(), b.String())
}
