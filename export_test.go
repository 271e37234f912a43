package etcdgw

// SetPageHook makes ReadDir call hook after each page; it returns a function
// that removes the hook.
func SetPageHook(c *Client, hook func()) (restore func()) {
	c.pageHook = hook
	return func() { c.pageHook = nil }
}
