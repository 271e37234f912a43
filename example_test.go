package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/etcdgw/etcdgw"
)

// exampleEndpoint is the etcd the examples talk to: the one the tests start.
func exampleEndpoint() string { return shared.Endpoint() }

// exampleClient is a client under a key prefix of its own, so that the
// examples' output does not depend on what else is in etcd.
func exampleClient(name string, opts ...etcdgw.Option) *etcdgw.Client {
	prefix := fmt.Sprintf("/examples/%s/%d/", name, time.Now().UnixNano())
	c, err := etcdgw.New(append([]etcdgw.Option{etcdgw.WithEndpoints(exampleEndpoint()), etcdgw.WithKeyPrefix(prefix)}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func ExampleNew() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(exampleEndpoint()),
		etcdgw.WithTimeout(3*time.Second),
		etcdgw.WithKeyPrefix("/myapp/"),
	)
	if err != nil {
		log.Fatal(err) // a bad option: New does no I/O
	}
	defer c.Close()

	v, err := c.Version(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("server version starts with 3.:", v.Server[:2] == "3.")
	// Output: server version starts with 3.: true
}

func ExampleClient_Get() {
	c := exampleClient("get")
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Set(ctx, "config/port", 8080); err != nil {
		log.Fatal(err)
	}
	resp, err := c.Get(ctx, "config/port")
	if err != nil {
		log.Fatal(err)
	}
	var port int
	if err := c.Decode(resp.Kvs[0].Value, &port); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(resp.Kvs[0].Key), port)

	missing, err := c.Get(ctx, "config/host")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("missing key:", len(missing.Kvs), "kvs, no error")
	// Output:
	// config/port 8080
	// missing key: 0 kvs, no error
}

func ExampleClient_ReadDir() {
	c := exampleClient("readdir", etcdgw.WithSerializer(etcdgw.Raw))
	defer c.Close()
	ctx := context.Background()

	for _, k := range []string{"routes/a", "routes/b", "routes-old", "routes/c/d"} {
		if _, err := c.Set(ctx, k, "v"); err != nil {
			log.Fatal(err)
		}
	}
	dir, err := c.ReadDir(ctx, "routes/")
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range dir.Kvs {
		fmt.Println(string(kv.Key))
	}
	// Output:
	// routes/a
	// routes/b
	// routes/c/d
}

func ExampleClient_SetNX() {
	c := exampleClient("setnx", etcdgw.WithSerializer(etcdgw.Raw))
	defer c.Close()
	ctx := context.Background()

	first, err := c.SetNX(ctx, "leader", "node-1")
	if err != nil {
		log.Fatal(err)
	}
	second, err := c.SetNX(ctx, "leader", "node-2")
	if err != nil {
		log.Fatal(err)
	}
	update, err := c.SetX(ctx, "leader", "node-3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first SetNX wrote:", first.Succeeded)
	fmt.Println("second SetNX wrote:", second.Succeeded)
	fmt.Println("SetX wrote:", update.Succeeded)
	// Output:
	// first SetNX wrote: true
	// second SetNX wrote: false
	// SetX wrote: true
}

func ExampleClient_Txn() {
	c := exampleClient("txn", etcdgw.WithSerializer(etcdgw.Raw))
	defer c.Close()
	ctx := context.Background()

	put, err := c.Set(ctx, "balance", "100")
	if err != nil {
		log.Fatal(err)
	}
	// Compare-and-swap: write only if nobody wrote since we read.
	resp, err := c.Txn(ctx).
		If(etcdgw.Compare(etcdgw.ModRevision("balance"), "=", put.Header.Revision)).
		Then(etcdgw.OpPut("balance", "80"), etcdgw.OpPut("history/1", "-20")).
		Else(etcdgw.OpGet("balance")).
		Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("swapped:", resp.Succeeded)
	// Output: swapped: true
}

func ExampleClient_Watch() {
	c := exampleClient("watch", etcdgw.WithSerializer(etcdgw.Raw))
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ch := c.Watch(ctx, "door")
	created := <-ch
	fmt.Println("created:", created.Created)
	go func() {
		c.Set(ctx, "door", "open")
		c.Delete(ctx, "door")
	}()
	seen := 0
	for resp := range ch {
		if err := resp.Err(); err != nil {
			log.Fatal(err)
		}
		for _, ev := range resp.Events {
			fmt.Println(ev.Type, string(ev.Kv.Key), string(ev.Kv.Value))
			seen++
		}
		if seen == 2 {
			cancel() // ends the watch; the channel closes
		}
	}
	// Output:
	// created: true
	// PUT door open
	// DELETE door
}

func ExampleClient_KeepAlive() {
	c := exampleClient("keepalive")
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	lease, err := c.Grant(ctx, 5)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Set(ctx, "nodes/n1", "up", etcdgw.WithLease(lease.ID)); err != nil {
		log.Fatal(err)
	}
	alive, err := c.KeepAlive(ctx, lease.ID)
	if err != nil {
		log.Fatal(err)
	}
	first := <-alive
	fmt.Println("renewed, TTL", first.TTL)

	// Revoking the lease deletes its keys and ends the KeepAlive.
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		log.Fatal(err)
	}
	for range alive {
	}
	fmt.Println("keepalive channel closed")
	_, err = c.KeepAliveOnce(ctx, lease.ID)
	fmt.Println(errors.Is(err, etcdgw.ErrLeaseNotFound))
	// Output:
	// renewed, TTL 5
	// keepalive channel closed
	// true
}

func ExampleError() {
	c := exampleClient("error")
	defer c.Close()
	ctx := context.Background()

	_, err := c.Get(ctx, "k", etcdgw.WithRev(1<<40))
	var e *etcdgw.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.HTTPStatus, e.Message)
	}
	fmt.Println(errors.Is(err, etcdgw.ErrFutureRev))
	// Output:
	// 11 400 etcdserver: mvcc: required revision is a future revision
	// true
}
