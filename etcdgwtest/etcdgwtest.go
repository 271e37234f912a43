// Package etcdgwtest runs a real etcd, embedded in the test binary, for the
// integration tests of programs that use etcdgw: a server or a cluster on
// loopback ports with its data in a temporary directory, a client of it in
// one line, and a fault proxy that cuts, pauses and refuses connections, so
// that a program's own fault handling can be tested as etcdgw's is.
//
//	func TestMyService(t *testing.T) {
//		srv := etcdgwtest.NewServer(t)
//		c := srv.Client(t)
//		// ... use c; the server and the client are closed when t ends.
//	}
//
// The first build compiles etcd's server into the test binary, which takes a
// minute or two; later builds are cached. Importing etcdgwtest in a test
// file keeps etcd out of the program itself.
//
// Every function here takes the test's testing.TB, fails the test when the
// server cannot start or be restarted, and must be called from the test's
// goroutine.
package etcdgwtest

import (
	"crypto/tls"
	"net/url"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// ServerOption configures NewServer and NewCluster.
type ServerOption func(*serverConfig)

type serverConfig struct {
	tls          bool
	clientCert   bool
	rootPassword string
	tune         func(*embed.Config)
}

// WithTLS serves https with certificates from a fresh CA, for 127.0.0.1 and
// localhost; Server.CAFile is the CA, which Server.Client trusts.
func WithTLS() ServerOption { return func(c *serverConfig) { c.tls = true } }

// WithClientCertAuth serves https (as WithTLS) and requires a client
// certificate signed by the CA: Server.ClientCertFiles, which Server.Client
// presents.
func WithClientCertAuth() ServerOption {
	return func(c *serverConfig) { c.tls, c.clientCert = true, true }
}

// WithAuth turns authentication on with the user "root", of the role root,
// and this password; Server.Client authenticates as root. Add users and
// roles with the client's UserAdd, RoleAdd and RoleGrantPermission.
func WithAuth(rootPassword string) ServerOption {
	return func(c *serverConfig) { c.rootPassword = rootPassword }
}

// WithConfig changes etcd's own configuration before it starts, after
// everything else: quotas, request limits, compaction, auth token kind, and
// so on. It applies to every member of a cluster.
func WithConfig(f func(*embed.Config)) ServerOption {
	return func(c *serverConfig) { c.tune = f }
}

func (c serverConfig) etcdtest() etcdtest.Config {
	return etcdtest.Config{Name: "etcdgwtest", TLS: c.tls, ClientCertAuth: c.clientCert, Embed: c.tune}
}

func configure(opts []ServerOption) serverConfig {
	var c serverConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// Server is one etcd member.
type Server struct {
	t   testing.TB
	s   *etcdtest.Server
	cfg serverConfig
}

// NewServer starts a single-member etcd on a free loopback port, with its
// data in a temporary directory, and waits until it serves. It is stopped
// and its data removed when t ends.
func NewServer(t testing.TB, opts ...ServerOption) *Server {
	t.Helper()
	cfg := configure(opts)
	s := &Server{t: t, s: etcdtest.NewServer(t, cfg.etcdtest()), cfg: cfg}
	if cfg.rootPassword != "" {
		s.enableAuth(t)
	}
	return s
}

func (s *Server) enableAuth(t testing.TB) {
	t.Helper()
	var tlsCfg *tls.Config
	if certs := s.s.Certs(); certs != nil && s.cfg.tls {
		var err error
		if tlsCfg, err = certs.ClientTLSConfig(); err != nil {
			t.Fatalf("etcdgwtest: %v", err)
		}
	}
	if err := etcdtest.EnableAuth(s.Endpoint(), tlsCfg, s.cfg.rootPassword); err != nil {
		t.Fatalf("etcdgwtest: %v", err)
	}
}

// Endpoint returns the client URL, such as "http://127.0.0.1:41234".
func (s *Server) Endpoint() string { return s.s.Endpoint() }

// Client returns a client of the server: its endpoint, its CA (WithTLS),
// its client certificate (WithClientCertAuth) and root's credentials
// (WithAuth), then opts, which may override them. It is closed when t ends.
func (s *Server) Client(t testing.TB, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	return newClient(t, s.cfg, s.s.Certs(), []string{s.Endpoint()}, opts)
}

// Stop stops the member as a crash would: connections and watches are cut.
// Its data stays, for Restart.
func (s *Server) Stop() {
	if err := s.s.Stop(); err != nil {
		s.t.Fatalf("etcdgwtest: %v", err)
	}
}

// Restart starts the member again, after Stop or while it runs, on the same
// port with the same data, and waits until it serves.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.s.Restart(); err != nil {
		s.t.Fatalf("etcdgwtest: %v", err)
	}
}

// CAFile returns the path of the CA certificate (PEM) with WithTLS or
// WithClientCertAuth, "" otherwise.
func (s *Server) CAFile() string {
	if c := s.s.Certs(); c != nil && s.cfg.tls {
		return c.CAFile
	}
	return ""
}

// ClientCertFiles returns the paths of a client certificate and its key
// (PEM), signed by the CA, with WithClientCertAuth; "" otherwise.
func (s *Server) ClientCertFiles() (certFile, keyFile string) {
	if c := s.s.Certs(); c != nil && s.cfg.clientCert {
		return c.ClientCertFile, c.ClientKeyFile
	}
	return "", ""
}

func newClient(t testing.TB, cfg serverConfig, certs *etcdtest.Certs, endpoints []string, opts []etcdgw.Option) *etcdgw.Client {
	t.Helper()
	base := []etcdgw.Option{etcdgw.WithEndpoints(endpoints...)}
	if cfg.tls && certs != nil {
		base = append(base, etcdgw.WithCAFile(certs.CAFile))
	}
	if cfg.clientCert && certs != nil {
		base = append(base, etcdgw.WithClientCertFiles(certs.ClientCertFile, certs.ClientKeyFile))
	}
	if cfg.rootPassword != "" {
		base = append(base, etcdgw.WithAuth("root", cfg.rootPassword))
	}
	c, err := etcdgw.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("etcdgwtest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Cluster is a cluster of etcd members on loopback ports.
type Cluster struct {
	c       *etcdtest.Cluster
	members []*Server
	cfg     serverConfig
}

// NewCluster starts a cluster of this many members and waits until each
// serves. It is stopped and its data removed when t ends.
func NewCluster(t testing.TB, members int, opts ...ServerOption) *Cluster {
	t.Helper()
	cfg := configure(opts)
	c := &Cluster{c: etcdtest.NewCluster(t, members, cfg.etcdtest()), cfg: cfg}
	for i := 0; i < members; i++ {
		c.members = append(c.members, &Server{t: t, s: c.c.Member(i), cfg: cfg})
	}
	if cfg.rootPassword != "" {
		c.members[0].enableAuth(t)
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string { return c.c.Endpoints() }

// Member returns the i-th member, from 0, to stop and restart it.
func (c *Cluster) Member(i int) *Server { return c.members[i] }

// Client returns a client of every member, configured as Server.Client. It
// is closed when t ends.
func (c *Cluster) Client(t testing.TB, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	return newClient(t, c.cfg, c.c.Certs(), c.Endpoints(), opts)
}

// Proxy is a TCP proxy in front of a member, for fault tests: it cuts,
// pauses and refuses connections on demand.
type Proxy struct {
	t      testing.TB
	p      *etcdtest.Proxy
	scheme string
}

// NewProxy starts a proxy on a free loopback port to target, an endpoint
// such as Server.Endpoint(). Give Proxy.Endpoint to the client instead of
// the member's (TLS passes through: the member's certificate is for
// 127.0.0.1, as the proxy's address is). It is closed when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("etcdgwtest: NewProxy: target %q is not a URL such as http://127.0.0.1:2379", target)
	}
	p, err := etcdtest.NewProxy(u.Host)
	if err != nil {
		t.Fatalf("etcdgwtest: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return &Proxy{t: t, p: p, scheme: u.Scheme}
}

// Endpoint returns the proxy's URL, with the target's scheme.
func (p *Proxy) Endpoint() string { return p.p.Endpoint(p.scheme) }

// Cut closes every connection through the proxy, as a reset would; new
// connections are accepted.
func (p *Proxy) Cut() { p.p.CutAll() }

// Pause holds back every byte in both directions without closing
// anything, as a partition that drops packets; connections still open.
func (p *Proxy) Pause() { p.p.Pause() }

// Resume delivers what Pause held back and forwards again.
func (p *Proxy) Resume() { p.p.Resume() }

// Refuse makes new connections fail with "connection refused" while
// refuse is true (live ones are kept), as a member that is down.
func (p *Proxy) Refuse(refuse bool) {
	if err := p.p.SetRefuse(refuse); err != nil {
		p.t.Fatalf("etcdgwtest: %v", err)
	}
}
