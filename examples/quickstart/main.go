// Command quickstart shows etcdgw's main calls: it sets and gets keys, reads a
// directory, runs transactions, attaches a key to a lease and watches a change.
//
// With ETCD_ENDPOINTS unset it starts an embedded etcd of its own in a
// temporary directory; set ETCD_ENDPOINTS=http://127.0.0.1:2379[,...] to use
// a running cluster instead. It works under the key prefix /etcdgw-quickstart/.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

type service struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

func run() error {
	endpoints := os.Getenv("ETCD_ENDPOINTS")
	if endpoints == "" {
		s, err := etcdtest.StartServer(etcdtest.Config{Name: "quickstart"})
		if err != nil {
			return fmt.Errorf("starting an embedded etcd: %w", err)
		}
		defer s.Close()
		endpoints = s.Endpoint()
		fmt.Println("started an embedded etcd at", endpoints)
	}
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(strings.Split(endpoints, ",")...),
		etcdgw.WithKeyPrefix("/etcdgw-quickstart/"),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("etcd %s (cluster %s)\n", v.Server, v.Cluster)
	if _, err := c.RmDir(ctx, ""); err != nil { // start from a clean prefix
		return err
	}

	// Set and Get: values go through the JSON serializer.
	for i, addr := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		put, err := c.Set(ctx, fmt.Sprintf("services/web/%d", i), service{Addr: addr, Weight: 10})
		if err != nil {
			return err
		}
		fmt.Printf("set services/web/%d at revision %d\n", i, put.Header.Revision)
	}
	got, err := c.Get(ctx, "services/web/0")
	if err != nil {
		return err
	}
	var s service
	if err := c.Decode(got.Kvs[0].Value, &s); err != nil {
		return err
	}
	fmt.Printf("get services/web/0: %+v\n", s)
	missing, err := c.Get(ctx, "services/web/9")
	if err != nil {
		return err
	}
	fmt.Printf("get services/web/9: %d keys (a missing key is no error)\n", len(missing.Kvs))

	// ReadDir: every key under a prefix, read at one revision.
	dir, err := c.ReadDir(ctx, "services/web/")
	if err != nil {
		return err
	}
	fmt.Printf("readdir services/web/: %d keys at revision %d\n", len(dir.Kvs), dir.Header.Revision)
	for _, kv := range dir.Kvs {
		fmt.Printf("  %s = %s\n", kv.Key, kv.Value)
	}

	// SetNX and a compare-and-swap transaction.
	nx, err := c.SetNX(ctx, "leader", "node-a")
	if err != nil {
		return err
	}
	fmt.Println("setnx leader=node-a:", nx.Succeeded)
	nx, err = c.SetNX(ctx, "leader", "node-b")
	if err != nil {
		return err
	}
	fmt.Println("setnx leader=node-b:", nx.Succeeded, "(the key exists)")
	txn, err := c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.Value("leader"), "=", "node-a")).
		Then(etcdgw.OpPut("leader", "node-c"), etcdgw.OpGet("leader")).
		Else(etcdgw.OpGet("leader")).
		Commit()
	if err != nil {
		return err
	}
	fmt.Printf("txn: if leader = node-a then leader = node-c: succeeded=%v, leader now %s\n",
		txn.Succeeded, txn.Responses[1].Get.Kvs[0].Value)

	// A key on a lease disappears with it.
	lease, err := c.Grant(ctx, 30)
	if err != nil {
		return err
	}
	if _, err := c.Set(ctx, "session", "alive", etcdgw.WithLease(lease.ID)); err != nil {
		return err
	}
	if _, err := c.KeepAliveOnce(ctx, lease.ID); err != nil {
		return err
	}
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		return err
	}
	session, err := c.Get(ctx, "session")
	if err != nil {
		return err
	}
	fmt.Printf("lease %d granted, renewed, revoked: session has %d keys\n", lease.ID, len(session.Kvs))

	// Watch the directory from the revision after the read: no change is missed.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	watch := c.WatchDir(wctx, "services/web/", etcdgw.WithRev(dir.Header.Revision+1))
	if _, err := c.Delete(ctx, "services/web/2"); err != nil {
		return err
	}
	for resp := range watch {
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Created {
			continue
		}
		for _, ev := range resp.Events {
			fmt.Printf("watch: %s %s at revision %d\n", ev.Type, ev.Kv.Key, ev.Kv.ModRevision)
		}
		stop()
	}

	// Errors are typed.
	_, err = c.Get(ctx, "services/web/0", etcdgw.WithRev(1<<40))
	fmt.Println("get at a future revision is ErrFutureRev:", errors.Is(err, etcdgw.ErrFutureRev))
	if _, err := c.RmDir(ctx, ""); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}
