package etcdgw

// SetPageHook makes ReadDir call hook after each page; it returns a function
// that removes the hook.
func SetPageHook(c *Client, hook func()) (restore func()) {
	c.pageHook = hook
	return func() { c.pageHook = nil }
}

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
