package etcdgw_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// tlsClient returns a client of endpoint with opts under a fresh key prefix,
// closed when the test ends.
func tlsClient(t *testing.T, endpoint string, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	opts = append([]etcdgw.Option{etcdgw.WithEndpoints(endpoint), etcdgw.WithKeyPrefix(testPrefix(t))}, opts...)
	c, err := etcdgw.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// writeRead writes a key and reads it back, returning the first error.
func writeRead(t *testing.T, c *etcdgw.Client) error {
	t.Helper()
	ctx := testCtx(t)
	if _, err := c.Set(ctx, "k", "secret"); err != nil {
		return err
	}
	got, err := c.Get(ctx, "k")
	if err != nil {
		return err
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != `"secret"` {
		return fmt.Errorf("got %v, want k = \"secret\"", got.Kvs)
	}
	return nil
}

// requireTLSFailure checks that err is a TLS failure of the transport, not an
// option error or an answer of etcd.
func requireTLSFailure(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.NotErrorIs(t, err, etcdgw.ErrInvalidOption)
	var e *etcdgw.Error
	assert.False(t, errors.As(err, &e), "got an answer from etcd: %v", err)
}

func TestTLSServerVerification(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "tls", TLS: true, ServerNames: []string{"etcd.test"}})
	certs := s.Certs()
	ep := s.Endpoint()
	require.True(t, strings.HasPrefix(ep, "https://127.0.0.1:"), ep)
	pool, err := certs.CertPool()
	require.NoError(t, err)

	t.Run("CA file", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("CA in TLS config", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("CA file before TLS config", func(t *testing.T) {
		// The TLS options apply on top of WithTLSConfig whatever their order.
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("TLS config is not modified", func(t *testing.T) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		c := tlsClient(t, ep, etcdgw.WithTLSConfig(cfg), etcdgw.WithCAFile(certs.CAFile), etcdgw.WithSNI("etcd.test"))
		require.NoError(t, writeRead(t, c))
		assert.Nil(t, cfg.RootCAs)
		assert.Empty(t, cfg.ServerName)
		assert.Empty(t, cfg.NextProtos)
	})
	t.Run("no CA", func(t *testing.T) {
		c := tlsClient(t, ep)
		err := writeRead(t, c)
		requireTLSFailure(t, err)
		var unknown x509.UnknownAuthorityError
		assert.True(t, errors.As(err, &unknown), "got %v, want x509.UnknownAuthorityError", err)
		var verr *tls.CertificateVerificationError
		assert.True(t, errors.As(err, &verr), "got %v, want *tls.CertificateVerificationError", err)
	})
	t.Run("other CA", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.OtherCAFile))
		err := writeRead(t, c)
		requireTLSFailure(t, err)
		var unknown x509.UnknownAuthorityError
		assert.True(t, errors.As(err, &unknown), "got %v, want x509.UnknownAuthorityError", err)
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithInsecureSkipVerify())
		require.NoError(t, writeRead(t, c))
	})
	t.Run("insecure skip verify ignores the SNI name", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithInsecureSkipVerify(), etcdgw.WithSNI("wrong.test"))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("SNI name in the certificate", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithSNI("etcd.test"))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("SNI name not in the certificate", func(t *testing.T) {
		// 127.0.0.1 is in the certificate: the failure shows that the
		// certificate is checked against the SNI name, not the endpoint's host.
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithSNI("wrong.test"))
		err := writeRead(t, c)
		requireTLSFailure(t, err)
		var hostErr x509.HostnameError
		require.True(t, errors.As(err, &hostErr), "got %v, want x509.HostnameError", err)
		assert.Equal(t, "wrong.test", hostErr.Host)
	})
	t.Run("SNI with a host name endpoint", func(t *testing.T) {
		// localhost is in the certificate, wrong.test is not: SNI wins.
		local := "https://localhost:" + strings.TrimPrefix(ep, "https://127.0.0.1:")
		require.NoError(t, writeRead(t, tlsClient(t, local, etcdgw.WithCAFile(certs.CAFile))))
		err := writeRead(t, tlsClient(t, local, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithSNI("wrong.test")))
		var hostErr x509.HostnameError
		assert.True(t, errors.As(err, &hostErr), "got %v, want x509.HostnameError", err)
	})
	t.Run("HTTP/2", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile))
		_, err := c.Version(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, 2, etcdgw.EndpointProto(c, ep), "HTTP major version over https")
	})
	t.Run("HTTP/2 with a TLS config", func(t *testing.T) {
		// A config of the caller's own, without NextProtos, still gets h2.
		c := tlsClient(t, ep, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool}))
		_, err := c.Version(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, 2, etcdgw.EndpointProto(c, ep), "HTTP major version over https")
	})
}

func TestPlainHTTPIsHTTP1(t *testing.T) {
	c := newClient(t)
	_, err := c.Version(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, 1, etcdgw.EndpointProto(c, shared.Endpoint()), "HTTP major version over http")
}

func TestSNIIsSent(t *testing.T) {
	// etcd cannot tell which server name a client sent: record it in a fake.
	names := make(chan string, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"etcdserver":"3.7.3","etcdcluster":"3.7.0"}`)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		names <- hello.ServerName
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	// httptest's certificate is for example.com and 127.0.0.1.
	c := tlsClient(t, srv.URL, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool}), etcdgw.WithSNI("example.com"))
	_, err := c.Version(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, "example.com", <-names)
	assert.Equal(t, 2, etcdgw.EndpointProto(c, srv.URL))

	// Without WithSNI, an IP endpoint sends no server name (RFC 6066).
	c2 := tlsClient(t, srv.URL, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool}))
	_, err = c2.Version(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, "", <-names)
}

func TestMTLS(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "mtls", ClientCertAuth: true, ServerNames: []string{"etcd.test"}})
	certs := s.Certs()
	ep := s.Endpoint()
	pool, err := certs.CertPool()
	require.NoError(t, err)

	t.Run("cert files", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithClientCertFiles(certs.ClientCertFile, certs.ClientKeyFile))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("cert PEM", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithClientCert(certs.ClientCertPEM, certs.ClientKeyPEM))
		require.NoError(t, writeRead(t, c))
	})
	t.Run("cert PEM with SNI", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithClientCert(certs.ClientCertPEM, certs.ClientKeyPEM), etcdgw.WithSNI("etcd.test"))
		require.NoError(t, writeRead(t, c))
		assert.Equal(t, 2, etcdgw.EndpointProto(c, ep), "HTTP major version over https")
	})
	t.Run("cert in TLS config", func(t *testing.T) {
		cfg, err := certs.ClientTLSConfig()
		require.NoError(t, err)
		c := tlsClient(t, ep, etcdgw.WithTLSConfig(cfg))
		require.NoError(t, writeRead(t, c))
	})
	// Under TLS 1.3 the client finishes its handshake before the server
	// checks the certificate, so the refusal shows as an alert, a reset or a
	// broken pipe at the first write; under TLS 1.2 it is always an alert.
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		name := tls.VersionName(version)
		t.Run("no client cert, "+name, func(t *testing.T) {
			c := tlsClient(t, ep, etcdgw.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: version, MaxVersion: version}))
			err := writeRead(t, c)
			requireTLSFailure(t, err)
			if version == tls.VersionTLS12 {
				assert.Contains(t, err.Error(), "remote error: tls", "the server refused the handshake")
			}
		})
		t.Run("client cert of another CA, "+name, func(t *testing.T) {
			c := tlsClient(t, ep, etcdgw.WithTLSConfig(&tls.Config{MinVersion: version, MaxVersion: version}),
				etcdgw.WithCAFile(certs.CAFile), etcdgw.WithClientCertFiles(certs.OtherClientCertFile, certs.OtherClientKeyFile))
			err := writeRead(t, c)
			requireTLSFailure(t, err)
			if version == tls.VersionTLS12 {
				assert.Contains(t, err.Error(), "remote error: tls", "the server refused the handshake")
			}
		})
	}
	t.Run("concurrent callers", func(t *testing.T) {
		c := tlsClient(t, ep, etcdgw.WithCAFile(certs.CAFile), etcdgw.WithClientCert(certs.ClientCertPEM, certs.ClientKeyPEM))
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				if _, err := c.Set(ctx, fmt.Sprintf("k%d", i), i); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		got, err := c.ReadDir(ctx, "k", etcdgw.WithCountOnly())
		require.NoError(t, err)
		assert.Equal(t, int64(32), got.Count)
	})
}

func TestTLSConfigArrayNotShared(t *testing.T) {
	certs := testCerts(t)
	own, err := tls.X509KeyPair(certs.ClientCertPEM, certs.ClientKeyPEM)
	require.NoError(t, err)
	// The caller's Certificates slice has spare capacity.
	cfg := &tls.Config{Certificates: make([]tls.Certificate, 1, 4)}
	cfg.Certificates[0] = own
	c, err := etcdgw.New(etcdgw.WithEndpoints("https://127.0.0.1:2379"), etcdgw.WithTLSConfig(cfg),
		etcdgw.WithClientCert(certs.OtherClientCertPEM, certs.OtherClientKeyPEM))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.Len(t, cfg.Certificates, 1)
	assert.Empty(t, cfg.Certificates[:2][1].Certificate, "New wrote into the spare capacity of the caller's Certificates")
}
