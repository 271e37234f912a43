package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/etcdgw/etcdgw"
)

// endpoint is the etcd the examples talk to. Point it at yours; the tests
// point it at the etcd they start.
var endpoint = "http://127.0.0.1:2379"

func ExampleNew() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(endpoint),
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/get/"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/readdir/"), etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/setnx/"), etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/txn/"), etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/watch/"), etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/keepalive/"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
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
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/error/"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Under a key prefix, RmDir("") deletes the client's whole namespace.
	defer c.RmDir(context.Background(), "")
	ctx := context.Background()

	_, err = c.Get(ctx, "k", etcdgw.WithRev(1<<40))
	var e *etcdgw.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.HTTPStatus, e.Message)
	}
	fmt.Println(errors.Is(err, etcdgw.ErrFutureRev))
	// Output:
	// 11 400 etcdserver: mvcc: required revision is a future revision
	// true
}

func ExampleClient_Set() {
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/set/"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	defer c.RmDir(context.Background(), "")
	ctx := context.Background()

	// Values go through the serializer: JSON by default.
	if _, err := c.Set(ctx, "config/port", 8080); err != nil {
		log.Fatal(err)
	}
	// WithPrevKV returns what was there before.
	r, err := c.Set(ctx, "config/port", 9090, etcdgw.WithPrevKV())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("was", string(r.PrevKv.Value))
	// A key on a lease goes when the lease ends.
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Set(ctx, "nodes/n1", "up", etcdgw.WithLease(lease.ID)); err != nil {
		log.Fatal(err)
	}
	// RawValue is written as is, whatever the serializer.
	if _, err := c.Set(ctx, "banner", etcdgw.RawValue("hello")); err != nil {
		log.Fatal(err)
	}
	b, err := c.Get(ctx, "banner")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b.Kvs[0].Value))
	// Output:
	// was 8080
	// hello
}

func ExampleClient_Delete() {
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/delete/"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	for _, k := range []string{"a", "dir/x", "dir/y"} {
		if _, err := c.Set(ctx, k, 1); err != nil {
			log.Fatal(err)
		}
	}
	d, err := c.Delete(ctx, "a")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted", d.Deleted)
	// Every key under dir/, with the pairs deleted.
	rm, err := c.RmDir(ctx, "dir/", etcdgw.WithPrevKV())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed", rm.Deleted, "first", string(rm.PrevKvs[0].Key))
	// Under a key prefix, RmDir("") empties the client's namespace; without
	// one it is refused: a wipe of all of etcd must say so.
	if _, err := c.RmDir(ctx, ""); err != nil {
		log.Fatal(err)
	}
	// Output:
	// deleted 1
	// removed 2 first dir/x
}

func ExampleWithKeyPrefix() {
	app, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/prefix/app1/"))
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	defer app.RmDir(context.Background(), "")
	ctx := context.Background()

	if _, err := app.Set(ctx, "port", 8080); err != nil {
		log.Fatal(err)
	}
	// Keys come back without the prefix...
	r, err := app.Get(ctx, "port")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(r.Kvs[0].Key))
	// ...and are stored under it.
	all, err := etcdgw.New(etcdgw.WithEndpoints(endpoint))
	if err != nil {
		log.Fatal(err)
	}
	defer all.Close()
	full, err := all.Get(ctx, "/examples/prefix/app1/port")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(full.Kvs[0].Key))
	// Output:
	// port
	// /examples/prefix/app1/port
}

// The list-then-watch pattern: read a prefix at one revision, then watch it
// from the next revision, so that no change is missed or seen twice. (The
// cache package does all of this, with recovery from compaction.)
func ExampleClient_WatchDir() {
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/listwatch/"),
		etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	defer c.RmDir(context.Background(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := c.Set(ctx, "routes/a", "v1"); err != nil {
		log.Fatal(err)
	}
	routes := map[string]string{}
	list, err := c.ReadDir(ctx, "routes/")
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range list.Kvs {
		routes[string(kv.Key)] = string(kv.Value)
	}
	ch := c.WatchDir(ctx, "routes/", etcdgw.WithRev(list.Header.Revision+1))
	if _, err := c.Set(ctx, "routes/b", "v2"); err != nil {
		log.Fatal(err)
	}
	for resp := range ch {
		if err := resp.Err(); err != nil {
			log.Fatal(err) // ErrCompacted: list again, and watch from there
		}
		for _, ev := range resp.Events {
			routes[string(ev.Kv.Key)] = string(ev.Kv.Value)
		}
		if len(routes) == 2 {
			break
		}
	}
	fmt.Println(routes["routes/a"], routes["routes/b"])
	// Output: v1 v2
}

// A write that was sent and not confirmed (a cut connection, a deadline, a
// proxy's 502 or 504) may or may not have been applied: it fails with
// ErrOutcomeUnknown and is not retried. Read back to find out.
func ExampleErrOutcomeUnknown() {
	c, err := etcdgw.New(etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix("/examples/unknown/"),
		etcdgw.WithSerializer(etcdgw.Raw))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	defer c.RmDir(context.Background(), "")
	ctx := context.Background()

	_, err = c.Set(ctx, "order/42", "paid")
	switch {
	case errors.Is(err, etcdgw.ErrOutcomeUnknown):
		r, rerr := c.Get(ctx, "order/42")
		if rerr != nil {
			log.Fatal(rerr)
		}
		fmt.Println("applied after all:", len(r.Kvs) == 1 && string(r.Kvs[0].Value) == "paid")
	case err != nil:
		log.Fatal(err) // surely not applied
	default:
		fmt.Println("written")
	}
	// Output: written
}

// A client of an etcd with authentication and TLS (not run: it needs such
// a server).
func ExampleWithAuth() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints("https://etcd-0.example:2379", "https://etcd-1.example:2379"),
		etcdgw.WithCAFile("/etc/etcd/ca.pem"),
		etcdgw.WithAuth("app", "secret"), // one token fetch, refreshed when etcd refuses it
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), "config"); errors.Is(err, etcdgw.ErrPermissionDenied) {
		log.Print("the user may not read config")
	}
}

// A client with a client certificate (mTLS) and a server name (not run: it
// needs such a server).
func ExampleWithClientCertFiles() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints("https://10.0.0.5:2379"),
		etcdgw.WithCAFile("/etc/etcd/ca.pem"),
		etcdgw.WithClientCertFiles("/etc/etcd/client.pem", "/etc/etcd/client-key.pem"),
		etcdgw.WithSNI("etcd.internal"), // the name the server's certificate is checked against
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
