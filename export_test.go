package etcdgw

// SetPageHook makes ReadDir call hook after each page; it returns a function
// that removes the hook.
func SetPageHook(c *Client, hook func()) (restore func()) {
	c.pageHook = hook
	return func() { c.pageHook = nil }
}

// WatchStreams reports the client's duplex watch streams and the watches on
// each.
func WatchStreams(c *Client) (streams, watches int) {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	for _, m := range c.muxes {
		if !m.dead {
			streams++
			watches += len(m.subs)
		}
	}
	return streams, watches
}

// OpenConns is the number of connections the client has open.
func OpenConns(c *Client) int { return c.conns.Len() }

// Evictions is how many times a slow watch was dropped from a duplex stream
// and subscribed again.
func Evictions(c *Client) int64 { return c.evictions.Load() }

// EndpointProto returns the HTTP major version of the last answer from the
// endpoint with this URL (as normalized by New), or 0 if none came yet.
func EndpointProto(c *Client, url string) int {
	for _, ep := range c.ring.Endpoints() {
		if ep.URL == url {
			return ep.Proto()
		}
	}
	return 0
}

// EndpointHealthy reports whether the endpoint with this URL (as normalized by
// New) is currently marked healthy.
func EndpointHealthy(c *Client, url string) bool {
	for _, ep := range c.ring.Endpoints() {
		if ep.URL == url {
			return c.ring.Healthy(ep)
		}
	}
	panic("no endpoint " + url)
}

// CoalesceQueued and CoalesceInFlight report the state of WithReadCoalescing:
// reads waiting for a slot, and requests in flight.
func CoalesceQueued(c *Client) int {
	c.coal.mu.Lock()
	defer c.coal.mu.Unlock()
	return len(c.coal.queue)
}

func CoalesceInFlight(c *Client) int {
	c.coal.mu.Lock()
	defer c.coal.mu.Unlock()
	return c.coal.inflight
}

// FailEndpoint records a failure of the endpoint with this URL (as
// normalized by New), as a failed call does.
func FailEndpoint(c *Client, url string) {
	for _, ep := range c.ring.Endpoints() {
		if ep.URL == url {
			c.ring.Fail(ep)
			return
		}
	}
	panic("no endpoint " + url)
}

// LeaseStreams reports the client's duplex keepalive streams and the
// KeepAlive loops holding each.
func LeaseStreams(c *Client) (streams, loops int) {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	for _, s := range c.leaseStreams {
		if !s.dead {
			streams++
			loops += s.refs
		}
	}
	return streams, loops
}
