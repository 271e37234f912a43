// Package etcdtest runs real etcd servers in the test process, for the
// tests, benchmarks and examples of etcdgw. It does not import etcdgw.
//
// # Servers and clusters
//
// [StartServer] starts a single embedded etcd (go.etcd.io/etcd/server/v3/embed)
// on 127.0.0.1 with free ports, its data in a temporary directory and its
// logs discarded; it is ready in about 0.1 s. [NewServer] does the same for
// a test and closes the server when the test ends. StartServer needs no
// *testing.T, so example programs can start a server too:
//
//	srv, err := etcdtest.StartServer(etcdtest.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer srv.Close()
//	endpoint := srv.Endpoint() // http://127.0.0.1:<port>
//
// [Server.Stop] and [Server.Restart] take a member down, cutting its open
// streams, and bring it back on the same ports with the same data, so
// revisions survive: this is how tests exercise reconnects and watch
// resumption. [StartCluster] starts a cluster in about half a second; its
// members can be stopped and restarted one at a time, [Cluster.Leader]
// finds the one to stop for a failover, and [Cluster.Stop] and
// [Cluster.Restart] take the whole cluster down and back.
//
// # Other etcd versions
//
// When the environment variable ETCDGW_ETCD_BINARY ([BinaryEnv]) names an
// etcd binary, servers and clusters run it as subprocesses instead, with
// the flags that match the Config and the binary's version, so that the
// same tests run against etcd 3.4, 3.5 or 3.6 (scripts/compat.sh). Stop,
// Restart and Close stop and start the process; [Server.Etcd] is nil.
// [Version] and [VersionAtLeast] tell tests which etcd they talk to, and
// [External] whether it is a subprocess. The kernel kills the processes if
// the test binary dies (on Linux), and [CheckProcesses] reports and kills
// any that a test binary left open.
//
// # TLS and auth
//
// Config.TLS serves https with certificates from [GenerateCerts];
// Config.ClientCertAuth also requires client certificates. [EnableAuth]
// creates users and roles and turns authentication on.
//
// Two etcd behaviours shape the certificates and what tests can expect.
// Under client-cert auth the gateway dials etcd's gRPC port presenting the
// server certificate, which therefore carries the clientAuth usage too. And
// once auth is on, etcd's gateway refuses client certificates that have a
// CommonName, so the generated ones have none; without a token, gateway
// requests over mTLS then fail with "permission denied" unless they carry
// an Accept header, in which case they fail with "user name is empty".
//
// # Faults
//
// [Proxy] forwards raw TCP and can cut, refuse or black-hole connections,
// accept them and never answer (a hung member), or answer late.
// [HTTPProxy] is an L7 reverse proxy that answers for etcd (a load
// balancer's 502, 503 or 504, a stopping member's 499), resets answers
// half-way, ends stream lines in their middle and cuts idle streams.
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
