// Package etcdtest runs real etcd servers in the test process, for the
// tests, benchmarks and examples of etcdgw. It does not import etcdgw.
//
// # Servers and clusters
//
// [StartServer] starts a single embedded etcd (go.etcd.io/etcd/server/v3/embed)
// on 127.0.0.1 with free ports, its data in a temporary directory and its
// logs discarded; it is ready in well under a second. [NewServer] does the
// same for a test and closes the server when the test ends. Neither needs a
// *testing.T beyond that, so example programs can start a server too.
//
// [Server.Stop] and [Server.Restart] take a member down and bring it back
// on the same ports with the same data, so revisions survive: this is how
// tests exercise reconnects and watch resumption. [StartCluster] starts a
// cluster whose members can be stopped and restarted one at a time.
//
// Config.TLS serves https with certificates from [GenerateCerts];
// Config.ClientCertAuth also requires client certificates. [EnableAuth]
// creates users and roles and turns authentication on.
//
// # Faults
//
// [Proxy] forwards raw TCP and can cut, refuse or black-hole connections.
// [UnixProxy] serves HTTP on a unix socket and [RecordingProxy] on a TCP
// port; both forward to etcd and record each request's Host, path and
// headers.
//
// # Leaks
//
// Stopping a server or cluster ends all of its goroutines, so a test
// binary can check for leaks with
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
//	}
//
// To get there the package sets one etcd global before the first server
// starts: rafthttp.ConnReadTimeout, the read timeout of peer connections,
// drops from 5 s to 1 s (see peerReadTimeout in server.go for why).
package etcdtest
