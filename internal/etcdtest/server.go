package etcdtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
)

// DefaultStartTimeout is how long a server waits for etcd to become ready
// when [Config.StartTimeout] is zero.
const DefaultStartTimeout = 30 * time.Second

// peerReadTimeout replaces etcd's 5 s read timeout on peer connections.
//
// etcd wraps every peer connection in a conn that sets a fresh read
// deadline at each Read. When a peer request such as a probe finishes,
// net/http aborts the connection's background read by setting a deadline
// in the past, but the wrapper may then overwrite it with its own, so the
// connection and the remote member's keep-alive connection to it linger
// until the timeout. A stopping member waits a second for those
// connections (its peer server's shutdown budget) and then abandons them,
// and goleak, which retries for well under a second, reports them. With a
// one second timeout they end before the member has finished stopping.
// etcd's stream heartbeats come every third of this timeout and raft's
// every 100 ms, so live loopback connections never hit it.
const peerReadTimeout = time.Second

var tuneRaftHTTP sync.Once

// bindAttempts is how many times a start is tried when etcd cannot bind the
// ports chosen for it, which happens when another process takes a port
// between the moment it is found free and the moment etcd listens on it.
const bindAttempts = 5

// Config describes an embedded etcd server. The zero value is a plain-HTTP
// single member with its data in a temporary directory and etcd's
// defaults, except that fsync is off, bcrypt runs at its minimum cost and a
// single member's raft timing is faster (see ElectionTimeout).
type Config struct {
	// Name is the member name, "etcdtest" when empty. Cluster members are
	// named Name-0, Name-1 and so on.
	Name string
	// Dir is the data directory. When empty, the server creates a
	// temporary one and removes it in Close. A cluster puts each member in
	// a subdirectory of Dir.
	Dir string

	// TLS makes the client URL https, with certificates from Certs or,
	// when Certs is nil, freshly generated ones.
	TLS bool
	// ClientCertAuth requires clients to present a certificate signed by
	// the test CA. It implies TLS.
	ClientCertAuth bool
	// Certs are the certificates to serve with; nil means generate them
	// with ServerNames as extra SANs. Peer traffic is always plain HTTP.
	Certs *Certs
	// ServerNames are extra DNS names or IPs for a generated server
	// certificate, for example "etcd.test".
	ServerNames []string
	// AlsoPlain makes a TLS server serve plain HTTP too, on a second client
	// URL ([Server.PlainEndpoint]), so that one cluster serves HTTP/2 and
	// HTTP/1.1 clients alike.
	AlsoPlain bool

	// MaxRequestBytes, MaxTxnOps, QuotaBackendBytes,
	// WatchProgressNotifyInterval, AuthToken and AuthTokenTTL set the etcd
	// options of the same names when not zero.
	MaxRequestBytes             uint
	MaxTxnOps                   uint
	QuotaBackendBytes           int64
	WatchProgressNotifyInterval time.Duration
	// AuthToken is etcd's --auth-token, "simple" when empty.
	AuthToken string
	// AuthTokenTTL is the lifetime in seconds of simple tokens.
	AuthTokenTTL uint

	// HeartbeatInterval and ElectionTimeout are raft's timing. When zero,
	// a single member uses 10 ms and 100 ms, so that it elects itself
	// within 100 ms of starting rather than within a second, and cluster
	// members keep etcd's 100 ms and 1 s, which tolerate a loaded test
	// machine. The shortest lease etcd grants is 1.5 election timeouts
	// rounded up to a second: 1 s for a single member, 2 s in a cluster.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration

	// Embed, when set, changes etcd's configuration last, after every
	// other field has been applied. It is not applied in external mode.
	Embed func(*embed.Config)

	// StartTimeout bounds the wait for the server to be ready;
	// DefaultStartTimeout when zero.
	StartTimeout time.Duration
	// Logger receives etcd's logs. Nil discards them. In external mode
	// etcd's output goes to a file beside its data instead, and start
	// errors quote its end.
	Logger *zap.Logger
}

func (c Config) secure() bool { return c.TLS || c.ClientCertAuth }

// Server is an embedded etcd member listening on 127.0.0.1. Its methods are
// safe for concurrent use.
type Server struct {
	cfg     Config
	name    string
	root    string // temporary directory this server removes in Close
	dataDir string
	certs   *Certs

	clientURL url.URL
	plainURL  url.URL // with AlsoPlain on a TLS server: the plain-HTTP client URL
	peerURL   url.URL
	// cluster and token are the initial cluster of the member's first
	// start; later starts find the membership in the data directory.
	cluster string
	token   string
	single  bool // the only member of its cluster

	mu      sync.Mutex
	etcd    *embed.Etcd
	proc    *process // the running etcd process in external mode
	started bool     // has been ready at least once: restart as "existing"
	closed  bool

	// grpcServers are the running etcd's gRPC servers, which embed hands
	// over through Config.ServiceRegister once it serves clients.
	grpcMu      sync.Mutex
	grpcServers []*grpc.Server
}

// StartServer starts a single-member etcd and waits until it serves
// requests. The caller must Close it.
func StartServer(cfg Config) (*Server, error) {
	var lastErr error
	for range bindAttempts {
		s, err := newServer(cfg, "", 0)
		if err != nil {
			return nil, err
		}
		ports, err := freePorts(3)
		if err != nil {
			s.removeFiles()
			return nil, err
		}
		s.setPorts(ports[0], ports[1], ports[2])
		s.cluster = s.name + "=" + s.peerURL.String()
		s.single = true
		s.token = "etcdtest-" + strconv.Itoa(ports[1])
		if err = s.Restart(); err == nil {
			return s, nil
		}
		s.Close()
		if !isAddrInUse(err) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// NewServer is StartServer for tests: it fails t when the server does not
// start and closes the server when t ends.
func NewServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// newServer prepares a server's directories and certificates without ports.
// A cluster member gets its data directory in clusterDir and is named after
// its index; a single server has an empty clusterDir.
func newServer(cfg Config, clusterDir string, index int) (*Server, error) {
	s := &Server{cfg: cfg, name: cfg.Name}
	if s.name == "" {
		s.name = "etcdtest"
	}
	if clusterDir != "" {
		s.name += "-" + strconv.Itoa(index)
		s.dataDir = filepath.Join(clusterDir, s.name)
		s.certs = cfg.Certs
		return s, nil
	}
	root, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: create temp dir: %w", err)
	}
	s.root = root
	s.dataDir = cfg.Dir
	if s.dataDir == "" {
		s.dataDir = filepath.Join(root, "data")
	}
	if cfg.secure() {
		s.certs = cfg.Certs
		if s.certs == nil {
			if s.certs, err = GenerateCerts(filepath.Join(root, "certs"), cfg.ServerNames...); err != nil {
				s.removeFiles()
				return nil, err
			}
		}
	}
	return s, nil
}

// setPorts sets the member's URLs; plain is used only with AlsoPlain.
func (s *Server) setPorts(client, peer, plain int) {
	scheme := "http"
	if s.cfg.secure() {
		scheme = "https"
		if s.cfg.AlsoPlain {
			s.plainURL = url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(plain))}
		}
	}
	s.clientURL = url.URL{Scheme: scheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(client))}
	s.peerURL = url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peer))}
}

// Name returns the member name.
func (s *Server) Name() string { return s.name }

// Endpoint returns the client URL, such as "http://127.0.0.1:41234" or
// "https://127.0.0.1:41234". It does not change across restarts.
func (s *Server) Endpoint() string { return s.clientURL.String() }

// PlainEndpoint returns the plain-HTTP client URL of a TLS server started
// with AlsoPlain, and Endpoint otherwise.
func (s *Server) PlainEndpoint() string {
	if s.plainURL.Host != "" {
		return s.plainURL.String()
	}
	return s.Endpoint()
}

// clientURLs are the URLs the member serves clients on.
func (s *Server) clientURLs() []url.URL {
	if s.plainURL.Host != "" {
		return []url.URL{s.clientURL, s.plainURL}
	}
	return []url.URL{s.clientURL}
}

// ClientAddr returns the client host:port.
func (s *Server) ClientAddr() string { return s.clientURL.Host }

// PeerAddr returns the peer host:port.
func (s *Server) PeerAddr() string { return s.peerURL.Host }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.dataDir }

// Certs returns the certificates the server serves with, or nil without
// TLS.
func (s *Server) Certs() *Certs { return s.certs }

// Etcd returns the running embedded etcd, or nil while stopped. It is for
// tests that need etcd internals; prefer the client endpoint. In external
// mode (see [BinaryEnv]) there is no embedded etcd and Etcd always returns
// nil: tests that need it skip when [External] reports true.
func (s *Server) Etcd() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd
}

// MemberID returns the server's raft member ID, as etcd puts it in the
// member_id of every response header. It works in both modes; the server
// must be running.
func (s *Server) MemberID() (uint64, error) {
	if e := s.Etcd(); e != nil {
		return uint64(e.Server.MemberID()), nil
	}
	if External() && s.Running() {
		return s.processMemberID()
	}
	return 0, errors.New("etcdtest: MemberID: the server is not running")
}

// Running reports whether the server is started.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd != nil || s.proc != nil
}

// Stop shuts etcd down, closing its listeners and connections, and waits
// for its goroutines. Requests in flight and streams such as watches are
// cut, not drained, as when etcd crashes; a cluster leader still hands
// over leadership first. The data directory stays, so Restart can bring
// the member back. Stop is idempotent. A single server stops in
// milliseconds; a cluster member can take up to a second while its peer
// connections finish. In external mode Stop sends etcd SIGTERM and kills it
// if it has not exited a second later.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	return nil
}

func (s *Server) stopLocked() {
	if s.proc != nil {
		s.proc.stop()
		s.proc = nil
		return
	}
	if s.etcd == nil {
		return
	}
	// Stopping gRPC first ends every stream, the ones the gateway proxies
	// included. Otherwise Close waits out etcd's request timeout (5 s plus
	// two election timeouts) for each open gateway watch or keepalive
	// response before it cuts them anyway.
	s.grpcMu.Lock()
	servers := s.grpcServers
	s.grpcServers = nil
	s.grpcMu.Unlock()
	for _, gs := range servers {
		gs.Stop()
	}
	s.etcd.Close()
	s.etcd = nil
}

// kill stops etcd without the graceful leadership transfer that Stop does
// for a leader. When the whole cluster goes down together the transfer
// targets a member that is stopping too, and waits out etcd's request
// timeout (7 s with the default election timeout).
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
		return
	}
	if s.etcd == nil {
		return
	}
	// HardStop ends the raft loop and cancels the server's context, so the
	// transfer that Close attempts returns at once.
	s.etcd.Server.HardStop()
	s.stopLocked()
}

// Restart stops the server if it runs and starts it again on the same
// client and peer ports with the same data directory, so keys, revisions,
// leases and auth settings survive. It waits until the server is ready; a
// cluster member is ready once a quorum is up.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("etcdtest: restart: server is closed")
	}
	s.stopLocked()
	var err error
	for attempt := range bindAttempts {
		if err = s.startLocked(); err == nil || !s.started || !isAddrInUse(err) {
			break
		}
		// The ports are fixed now: wait for whoever holds them to let go.
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return err
}

// Close stops the server and removes the directories it created. Close is
// idempotent; a closed server cannot be restarted.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.removeFiles()
}

func (s *Server) removeFiles() error {
	if s.root == "" {
		return nil
	}
	if err := os.RemoveAll(s.root); err != nil {
		return fmt.Errorf("etcdtest: remove temp dir: %w", err)
	}
	return nil
}

// embedConfig translates the Config into etcd's.
func (s *Server) embedConfig() *embed.Config {
	ec := embed.NewConfig()
	ec.Name = s.name
	ec.Dir = s.dataDir
	lg := s.cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.ServiceRegister = func(gs *grpc.Server) {
		s.grpcMu.Lock()
		defer s.grpcMu.Unlock()
		s.grpcServers = append(s.grpcServers, gs)
	}

	ec.ListenClientUrls = s.clientURLs()
	ec.AdvertiseClientUrls = s.clientURLs()
	ec.ListenPeerUrls = []url.URL{s.peerURL}
	ec.AdvertisePeerUrls = []url.URL{s.peerURL}
	ec.InitialCluster = s.cluster
	ec.InitialClusterToken = s.token
	ec.ClusterState = embed.ClusterStateFlagNew
	if s.started {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}

	heartbeat, election := s.raftTiming()
	ec.TickMs = uint(heartbeat / time.Millisecond)
	ec.ElectionMs = uint(election / time.Millisecond)

	// Tests do not survive power loss; fsync only slows them down.
	ec.UnsafeNoFsync = true
	// bcrypt at its default cost makes every user add and authenticate
	// take tens of milliseconds, far more under the race detector.
	ec.BcryptCost = uint(bcrypt.MinCost)

	if s.cfg.secure() {
		ec.ClientTLSInfo.CertFile = s.certs.ServerCertFile
		ec.ClientTLSInfo.KeyFile = s.certs.ServerKeyFile
		if s.cfg.ClientCertAuth {
			// etcd requires client certificates as soon as a trusted CA
			// is set, so set it only for client-cert auth.
			ec.ClientTLSInfo.TrustedCAFile = s.certs.CAFile
			ec.ClientTLSInfo.ClientCertAuth = true
		}
	}
	if s.cfg.MaxRequestBytes != 0 {
		ec.MaxRequestBytes = s.cfg.MaxRequestBytes
	}
	if s.cfg.MaxTxnOps != 0 {
		ec.MaxTxnOps = s.cfg.MaxTxnOps
	}
	if s.cfg.QuotaBackendBytes != 0 {
		ec.QuotaBackendBytes = s.cfg.QuotaBackendBytes
	}
	if s.cfg.WatchProgressNotifyInterval != 0 {
		ec.WatchProgressNotifyInterval = s.cfg.WatchProgressNotifyInterval
	}
	if s.cfg.AuthToken != "" {
		ec.AuthToken = s.cfg.AuthToken
	}
	if s.cfg.AuthTokenTTL != 0 {
		ec.AuthTokenTTL = s.cfg.AuthTokenTTL
	}
	if s.cfg.Embed != nil {
		s.cfg.Embed(ec)
	}
	return ec
}

// raftTiming returns the heartbeat interval and election timeout of the
// member: the Config's, or defaults (see Config.ElectionTimeout).
func (s *Server) raftTiming() (heartbeat, election time.Duration) {
	heartbeat, election = 100*time.Millisecond, time.Second
	if s.single {
		heartbeat, election = 10*time.Millisecond, 100*time.Millisecond
	}
	if s.cfg.HeartbeatInterval > 0 {
		heartbeat = s.cfg.HeartbeatInterval
	}
	if s.cfg.ElectionTimeout > 0 {
		election = s.cfg.ElectionTimeout
	}
	return heartbeat, election
}

// startLocked starts etcd and waits for it to be ready.
func (s *Server) startLocked() error {
	if External() {
		p, err := s.startProcess()
		if err != nil {
			return err
		}
		if err := s.awaitProcess(p); err != nil {
			return err
		}
		s.proc = p
		s.started = true
		return nil
	}
	e, err := s.launch()
	if err != nil {
		return err
	}
	if err := s.await(e); err != nil {
		return err
	}
	s.setRunningLocked(e)
	return nil
}

func (s *Server) setRunningLocked(e *embed.Etcd) {
	s.etcd = e
	s.started = true
}

// launch starts etcd without waiting for it to be ready. StartEtcd returns
// once the member has bootstrapped and serves its peer port.
func (s *Server) launch() (*embed.Etcd, error) {
	// rafthttp reads this global when it creates listeners and streams:
	// set it once, before the first member of the process starts.
	tuneRaftHTTP.Do(func() { rafthttp.ConnReadTimeout = peerReadTimeout })
	e, err := embed.StartEtcd(s.embedConfig())
	if err != nil {
		return nil, fmt.Errorf("etcdtest: start %s: %w", s.name, err)
	}
	return e, nil
}

// await waits until e is ready to serve clients, and closes it if it fails
// or the start timeout passes first.
func (s *Server) await(e *embed.Etcd) error {
	timeout := s.cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err = <-e.Err():
		if err == nil {
			err = errors.New("etcd exited")
		}
		err = fmt.Errorf("etcdtest: start %s: %w", s.name, err)
	case <-e.Server.StopNotify():
		err = fmt.Errorf("etcdtest: start %s: server stopped before it was ready", s.name)
	case <-timer.C:
		err = fmt.Errorf("etcdtest: start %s: not ready after %v", s.name, timeout)
	}
	e.Close()
	return err
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners are held until every port is known, so the ports differ.
//
// The ports are drawn at random below the kernel's ephemeral range, never
// twice in one process: a member that stops keeps its port for its restart,
// and the kernel, which hands out recently freed ports again, would give it
// to a server of another test process (go test runs packages at once).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := listenUnused()
		if err != nil {
			return nil, fmt.Errorf("etcdtest: find free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Ports drawn by listenUnused: [portLow, portHigh), below Linux's default
// ephemeral range (32768-60999).
const portLow, portHigh = 10000, 32000

var portsUsed = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// listenUnused listens on a loopback port this process has not used yet,
// drawn at random; on the kernel's choice when none is found.
func listenUnused() (net.Listener, error) {
	portsUsed.Lock()
	defer portsUsed.Unlock()
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow)
		if portsUsed.m[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		portsUsed.m[port] = true
		return ln, nil
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || (err != nil && strings.Contains(err.Error(), "address already in use"))
}
