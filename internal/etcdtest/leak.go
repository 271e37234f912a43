package etcdtest

import "go.uber.org/goleak"

// LeakOptions returns the goleak options a test binary using this package
// needs, for goleak.VerifyTestMain or goleak.VerifyNone. It is empty: once
// every Server, Cluster and proxy is closed, embedded etcd leaves no
// goroutine behind, and a new entry here should come with its reason.
//
// etcd (v3.7.3) needed help to get there. Its peer connections outlived a
// stopped member for up to 5 s, which is why this package lowers etcd's
// peer read timeout (see peerReadTimeout). Open gateway streams held
// every stop for etcd's 5 s request timeout, which is why Stop stops the
// gRPC servers first. Stopping all members of a cluster at once left the
// leader trying for 7 s to hand leadership to a stopping member, which is
// why Cluster.Close hard-stops them. A 3.7 build starts no goroutines of
// its own at init (no opencensus worker, no glog flusher), its zap logger
// here is a no-op without goroutines, and its grpclog logger is left
// alone.
//
// Tests must still close what they open themselves: an http.Transport's
// idle connections, a clientv3 client, a watch response body.
func LeakOptions() []goleak.Option {
	return nil
}
