// Package etcdgw is a client for etcd v3 that speaks etcd's HTTP/JSON gateway
// instead of gRPC. It brings the API of the OpenResty library lua-resty-etcd to
// Go, keeps the shapes Go users know from go.etcd.io/etcd/client/v3 (Txn
// builder, OpOption, mvccpb key-values, WatchChan), and its import graph has no
// gRPC: a program that uses it is two thirds the size of one built on clientv3
// (0.67×, measured in the README's Benchmarks), builds faster, and runs where
// gRPC cannot (HTTP proxies and gateways, unix-socket sidecars, wasm).
//
// Values are JSON by default (lua-resty-etcd's default): Set(ctx, "k", "v")
// stores "v" with its quotes, and a plain value written by etcdctl or clientv3
// fails to decode with "the value is not JSON; use etcdgw.Raw for plain
// strings". [WithSerializer]([Raw]) stores strings and []byte as they are.
//
// # Creating and closing a client
//
// New validates its options and returns at once; the first call connects:
//
//	c, err := etcdgw.New(etcdgw.WithEndpoints("http://10.0.0.1:2379", "http://10.0.0.2:2379"))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
// A Client is safe for concurrent use; share one per cluster. Close ends its
// watches and keepalives and closes its connections.
//
// # Keys and values
//
// [Client.Set] serializes a value (JSON by default, or [Raw]) and
// [Client.Get] returns mvccpb.KeyValue pairs whose values [Client.Decode]
// reads back. [Client.ReadDir] and [Client.RmDir] work on every key under a
// prefix; ReadDir reads a directory of any size in pages at one revision.
// [Client.SetNX] writes a key only if it is absent, [Client.SetX] only if it
// exists. [Client.Txn] builds a transaction as in clientv3. With
// [WithKeyPrefix] every key sent is prefixed, and every key returned stripped,
// in every call.
//
// # Timeouts
//
// Every call takes a context. A unary call whose context has no deadline gets
// the client's [WithTimeout] (5s by default); watches and KeepAlive loops run
// until their context ends. When the context ends, the error satisfies
// errors.Is(err, ctx.Err()). Within a call, each attempt on one member is
// bounded too ([WithAttemptTimeout], derived from the deadline by default),
// and so is each connect ([WithDialTimeout]): a member that hangs costs one
// attempt, not the whole call.
//
// # Errors
//
// An error answer of etcd, in any server version's body shape, is an [*Error]
// with its gRPC code, HTTP status, message and endpoint, and errors.Is matches
// it to the sentinels: [ErrCompacted], [ErrFutureRev], [ErrLeaseNotFound],
// [ErrPermissionDenied], [ErrNoLeader], [ErrNoSpace] and the others. A missing
// key is not an error. Bad input from the caller fails before anything is
// sent, with [ErrKeyNotProvided], [ErrInvalidOption] or [ErrInvalidArgument];
// an unreadable answer is [ErrMalformedResponse], never a panic.
//
// # Watching
//
// [Client.Watch] and [Client.WatchDir] return a channel of WatchResponse,
// one per message of etcd. A broken stream is resumed, possibly on another
// endpoint, from the revision after the last one delivered: no event is lost
// or repeated. The watches to one member share one duplex stream: HTTP/2
// over https, a WebSocket over http (etcd 3.5 and later); see
// [WithWatchMultiplexing]. See the watch section of the README for the
// list-then-watch pattern.
//
// # Leases
//
// [Client.Grant] creates a lease, [Client.KeepAlive] keeps it alive in the
// background, and [WithLease] attaches keys to it; [WithTTL] does all of this
// for every Set.
//
// # TLS
//
// An https endpoint is verified against the system roots, or [WithCAFile];
// [WithClientCertFiles] and [WithClientCert] give a client certificate,
// [WithSNI] the server name. Over https the client speaks HTTP/2.
//
// # Clusters
//
// Several endpoints form a ring that starts at a random one. A failed endpoint
// (refused, reset, hung past the attempt timeout, a 5xx) is skipped for a fail
// timeout ([WithHealthCheck]); reads, renewals and watch connects retry on the
// next endpoint, writes only when they surely did not reach etcd. A write
// that may have been applied and was not confirmed (cut after sending, a
// deadline after sending, a proxy's 502 or 504) fails with
// [ErrOutcomeUnknown] and is never retried. A read that no member could
// serve fails with [ErrUnavailable]. An answer over [WithMaxResponseBytes] is
// [ErrResponseTooLarge], the client's own limit and no member's failure.
//
// # lua-resty-etcd
//
// Each method of lua-resty-etcd has its counterpart: new is [New], get
// [Client.Get], set [Client.Set], setnx [Client.SetNX], setx [Client.SetX]
// (with the success flag the right way round), delete [Client.Delete],
// readdir [Client.ReadDir], rmdir [Client.RmDir], txn [Client.Txn], watch
// [Client.Watch], watchdir [Client.WatchDir], watchcancel cancelling the
// watch's context, version [Client.Version], grant [Client.Grant], revoke
// [Client.Revoke], keepalive [Client.KeepAliveOnce] and [Client.KeepAlive],
// timetolive [Client.TimeToLive], leases [Client.Leases]. The README has the
// full table, options included.
package etcdgw
