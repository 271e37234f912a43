package cache_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/cache"
)

type Route struct {
	Host     string `json:"host"`
	Upstream string `json:"upstream"`
}

func Example() {
	c, err := etcdgw.New(
		etcdgw.WithEndpoints(shared.Endpoint()),
		etcdgw.WithKeyPrefix(fmt.Sprintf("/examples/cache/%d/", time.Now().UnixNano())),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Set(ctx, "/routes/a", Route{Host: "a.example.com", Upstream: "10.0.0.1:80"}); err != nil {
		log.Fatal(err)
	}

	routes, err := cache.New[Route](c, "/routes/")
	if err != nil {
		log.Fatal(err)
	}
	defer routes.Close()
	// One router rebuild per batch; this one hands the batches over.
	batches := make(chan cache.Batch[Route], 10)
	routes.AddHandler(func(b cache.Batch[Route]) { batches <- b })
	if err := routes.Start(ctx); err != nil {
		log.Fatal(err)
	}

	put, err := c.Set(ctx, "/routes/b", Route{Host: "b.example.com", Upstream: "10.0.0.2:80"})
	if err != nil {
		log.Fatal(err)
	}
	// Read your own write from the mirror.
	if err := routes.WaitForRevision(ctx, put.Header.Revision); err != nil {
		log.Fatal(err)
	}
	r, _ := routes.Get("/routes/b")
	fmt.Println(r.Value.Host, routes.Len())

	for range 2 { // the initial list, then the new route
		for _, e := range (<-batches).Events {
			fmt.Println(e.Type, e.Key, e.New.Value.Upstream)
		}
	}
	// Output:
	// b.example.com 2
	// added /routes/a 10.0.0.1:80
	// added /routes/b 10.0.0.2:80
}
