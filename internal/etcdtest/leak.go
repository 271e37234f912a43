package etcdtest

import "go.uber.org/goleak"

// LeakOptions returns the goleak options for goroutines that embedded etcd
// leaves behind even after every server is stopped.
func LeakOptions() []goleak.Option {
	return nil
}
