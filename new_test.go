package etcdgw_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// testCerts generates certificates without a server, for option tests.
func testCerts(t *testing.T) *etcdtest.Certs {
	t.Helper()
	certs, err := etcdtest.GenerateCerts(t.TempDir())
	require.NoError(t, err)
	return certs
}

// writeFile writes data to a file of the test's temporary directory.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestNewRefusesBadOptions(t *testing.T) {
	certs := testCerts(t)
	garbage := writeFile(t, "garbage.pem", []byte("this is not PEM\n"))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	const https = "https://127.0.0.1:2379"

	tests := []struct {
		name string
		opts []etcdgw.Option
		want string // in the error message: it names the problem
	}{
		// Endpoints.
		{"no endpoint", []etcdgw.Option{etcdgw.WithEndpoints()}, "no endpoint"},
		{"empty endpoint", []etcdgw.Option{etcdgw.WithEndpoints("")}, `endpoint ""`},
		{"ftp scheme", []etcdgw.Option{etcdgw.WithEndpoints("ftp://127.0.0.1:2379")}, "scheme must be http or https"},
		{"unix scheme", []etcdgw.Option{etcdgw.WithEndpoints("unix:///run/etcd.sock")}, "scheme must be http or https"},
		{"no scheme, host name", []etcdgw.Option{etcdgw.WithEndpoints("localhost:2379")}, "scheme"},
		{"no scheme, host only", []etcdgw.Option{etcdgw.WithEndpoints("etcd")}, "scheme"},
		{"no scheme, IP and port", []etcdgw.Option{etcdgw.WithEndpoints("127.0.0.1:2379")}, "scheme"},
		{"nil transport wrapper", []etcdgw.Option{etcdgw.WithTransport(nil)}, "nil wrapper"},
		{"transport wrapper returns nil", []etcdgw.Option{etcdgw.WithTransport(func(http.RoundTripper) http.RoundTripper { return nil })}, "returned nil"},
		{"path is the API prefix", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379/v3")}, "API prefix /v3"},
		{"base path ends with the API prefix", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379/etcd/v3beta/")}, "API prefix /v3beta"},
		{"base path with ..", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379/a/../b")}, ". or .. segment"},
		{"base path with an empty segment", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379/a//b")}, "empty"},
		{"query", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379?x=1")}, "has a query"},
		{"user info", []etcdgw.Option{etcdgw.WithEndpoints("http://root:pw@127.0.0.1:2379")}, "has user info"},
		{"fragment", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379#frag")}, "has a fragment"},
		{"empty port", []etcdgw.Option{etcdgw.WithEndpoints("http://h:")}, "empty port"},
		{"port not a number", []etcdgw.Option{etcdgw.WithEndpoints("http://h:abc")}, "port"},
		{"port 0", []etcdgw.Option{etcdgw.WithEndpoints("http://h:0")}, "port"},
		{"port out of range", []etcdgw.Option{etcdgw.WithEndpoints("http://h:65536")}, "port"},
		{"empty host", []etcdgw.Option{etcdgw.WithEndpoints("http://:2379")}, "no host"},
		{"https without host", []etcdgw.Option{etcdgw.WithEndpoints("https://")}, "no host"},
		{"IPv6 without closing bracket", []etcdgw.Option{etcdgw.WithEndpoints("http://[::1:2379")}, "]"},
		{"IPv6 not hex", []etcdgw.Option{etcdgw.WithEndpoints("http://[zz::1]:2379")}, "zz::1"},
		{"IPv6 without brackets", []etcdgw.Option{etcdgw.WithEndpoints("http://::1:2379")}, "port"},
		{"duplicate endpoint", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379", "http://127.0.0.1:2379")}, "given twice"},
		{"duplicate with default port", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1", "http://127.0.0.1:80/")}, "given twice"},
		{"duplicate with https default port", []etcdgw.Option{etcdgw.WithEndpoints("https://127.0.0.1", "https://127.0.0.1:443"), etcdgw.WithInsecureSkipVerify()}, "given twice"},
		{"duplicate IPv6", []etcdgw.Option{etcdgw.WithEndpoints("http://[::1]", "http://[::1]:80")}, "given twice"},
		{"duplicate base path", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1/etcd", "http://127.0.0.1:80/etcd/")}, "given twice"},

		// Plain values.
		{"negative timeout", []etcdgw.Option{etcdgw.WithTimeout(-time.Second)}, "WithTimeout"},
		{"negative TTL", []etcdgw.Option{etcdgw.WithTTL(-1)}, "WithTTL"},
		{"nil serializer", []etcdgw.Option{etcdgw.WithSerializer(nil)}, "nil serializer"},
		{"API prefix without slash", []etcdgw.Option{etcdgw.WithAPIPrefix("v3")}, "WithAPIPrefix"},
		{"API prefix unknown", []etcdgw.Option{etcdgw.WithAPIPrefix("/v4")}, "WithAPIPrefix"},
		{"API prefix trailing slash", []etcdgw.Option{etcdgw.WithAPIPrefix("/v3/")}, "WithAPIPrefix"},
		{"API prefix URL", []etcdgw.Option{etcdgw.WithAPIPrefix("http://h/v3")}, "WithAPIPrefix"},
		{"health check negative fail timeout", []etcdgw.Option{etcdgw.WithHealthCheck(-time.Second, 1)}, "fail timeout"},
		{"health check zero max fails", []etcdgw.Option{etcdgw.WithHealthCheck(time.Second, 0)}, "maxFails"},
		{"health check negative max fails", []etcdgw.Option{etcdgw.WithHealthCheck(time.Second, -3)}, "maxFails"},
		{"max response bytes zero", []etcdgw.Option{etcdgw.WithMaxResponseBytes(0)}, "WithMaxResponseBytes"},
		{"empty user name", []etcdgw.Option{etcdgw.WithAuth("", "pw")}, "user name"},
		{"empty unix socket", []etcdgw.Option{etcdgw.WithUnixSocket("")}, "WithUnixSocket"},
		{"nil option", []etcdgw.Option{nil}, "nil Option"},
		{"nil option after good ones", []etcdgw.Option{etcdgw.WithTimeout(time.Second), nil}, "nil Option"},

		// Headers.
		{"header empty name", []etcdgw.Option{etcdgw.WithHeader("", "v")}, "header name"},
		{"header name with space", []etcdgw.Option{etcdgw.WithHeader("X Foo", "v")}, "header name"},
		{"header name with colon", []etcdgw.Option{etcdgw.WithHeader("X-Foo:", "v")}, "header name"},
		{"header name with CRLF", []etcdgw.Option{etcdgw.WithHeader("X-Foo\r\nX-Evil", "v")}, "header name"},
		{"header name with separator", []etcdgw.Option{etcdgw.WithHeader("X(Foo)", "v")}, "header name"},
		{"header name not ASCII", []etcdgw.Option{etcdgw.WithHeader("X-Größe", "v")}, "header name"},
		{"header value with CRLF", []etcdgw.Option{etcdgw.WithHeader("X-Foo", "a\r\nX-Evil: 1")}, "X-Foo"},
		{"header value with LF", []etcdgw.Option{etcdgw.WithHeader("X-Foo", "a\nb")}, "X-Foo"},
		{"header value with CR", []etcdgw.Option{etcdgw.WithHeader("X-Foo", "a\rb")}, "X-Foo"},
		{"header value with NUL", []etcdgw.Option{etcdgw.WithHeader("X-Foo", "a\x00b")}, "X-Foo"},

		// TLS files and PEM.
		{"client cert file missing", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCertFiles(missing, certs.ClientKeyFile)}, "missing.pem"},
		{"client key file missing", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCertFiles(certs.ClientCertFile, missing)}, "missing.pem"},
		{"client cert file garbage", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCertFiles(garbage, certs.ClientKeyFile)}, "garbage.pem"},
		{"client key file garbage", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCertFiles(certs.ClientCertFile, garbage)}, "garbage.pem"},
		{"client cert and key mismatch", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCertFiles(certs.ClientCertFile, certs.OtherClientKeyFile)}, "does not match"},
		{"CA file missing", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithCAFile(missing)}, "missing.pem"},
		{"CA file garbage", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithCAFile(garbage)}, "no PEM certificate"},
		{"CA file is a key", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithCAFile(certs.ClientKeyFile)}, "no PEM certificate"},
		{"client cert PEM garbage", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCert([]byte("garbage"), certs.ClientKeyPEM)}, "WithClientCert"},
		{"client key PEM garbage", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCert(certs.ClientCertPEM, []byte("garbage"))}, "WithClientCert"},
		{"client cert PEM empty", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCert(nil, nil)}, "WithClientCert"},
		{"client cert PEM mismatch", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithClientCert(certs.ClientCertPEM, certs.OtherClientKeyPEM)}, "WithClientCert"},
		{"nil TLS config", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithTLSConfig(nil)}, "nil config"},
		{"empty SNI", []etcdgw.Option{etcdgw.WithEndpoints(https), etcdgw.WithSNI("")}, "WithSNI"},

		// TLS options without an https endpoint.
		{"CA file, http only", []etcdgw.Option{etcdgw.WithCAFile(certs.CAFile)}, "WithCAFile given, but no endpoint is https"},
		{"client cert files, http only", []etcdgw.Option{etcdgw.WithEndpoints("http://a:2379", "http://b:2379"), etcdgw.WithClientCertFiles(certs.ClientCertFile, certs.ClientKeyFile)}, "WithClientCertFiles given, but no endpoint is https"},
		{"client cert PEM, http only", []etcdgw.Option{etcdgw.WithClientCert(certs.ClientCertPEM, certs.ClientKeyPEM)}, "WithClientCert given, but no endpoint is https"},
		{"skip verify, http only", []etcdgw.Option{etcdgw.WithInsecureSkipVerify()}, "WithInsecureSkipVerify given, but no endpoint is https"},
		{"SNI, http only", []etcdgw.Option{etcdgw.WithSNI("etcd.test")}, "WithSNI given, but no endpoint is https"},
		{"TLS config, http only", []etcdgw.Option{etcdgw.WithTLSConfig(&tls.Config{})}, "WithTLSConfig given, but no endpoint is https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := etcdgw.New(tt.opts...)
			if c != nil {
				c.Close()
			}
			require.Error(t, err)
			assert.Nil(t, c, "no client with an error")
			assert.ErrorIs(t, err, etcdgw.ErrInvalidOption)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "etcdgw: "), "got %q, want the etcdgw: prefix", err)
		})
	}
}

func TestNewKeepsPasswordsOutOfErrors(t *testing.T) {
	for _, ep := range []string{
		"http://root:s3cret@127.0.0.1:2379",
		"https://root:s3cret@127.0.0.1:2379/v3",
		"http://root:s3cret@h:abc",
		"http://root:s3cret@[::1",
		"ftp://root:s3cret@h",
		"http://root:s3cret@h:0",
	} {
		_, err := etcdgw.New(etcdgw.WithEndpoints(ep))
		require.ErrorIs(t, err, etcdgw.ErrInvalidOption, ep)
		assert.Contains(t, err.Error(), "root", "the message still shows the URL")
		assert.NotContains(t, err.Error(), "s3cret", "the message shows the password")
	}
}

func TestNewRefusesManagedHeaders(t *testing.T) {
	managed := []string{"Authorization", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Upgrade", "Host"}
	for _, name := range managed {
		for _, spelling := range []string{name, strings.ToLower(name), strings.ToUpper(name), mixedCase(name)} {
			t.Run(spelling, func(t *testing.T) {
				c, err := etcdgw.New(etcdgw.WithHeader(spelling, "x"))
				if c != nil {
					c.Close()
				}
				require.ErrorIs(t, err, etcdgw.ErrInvalidOption)
				assert.Contains(t, err.Error(), name, "the message names the header")
				assert.Contains(t, err.Error(), "managed")
			})
		}
	}
}

// mixedCase alternates the case of s's letters: "hOsT".
func mixedCase(s string) string {
	b := []byte(strings.ToLower(s))
	for i := 1; i < len(b); i += 2 {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestNewAcceptsGoodOptions(t *testing.T) {
	certs := testCerts(t)
	tests := []struct {
		name string
		opts []etcdgw.Option
	}{
		{"defaults", nil},
		{"IPv6 with port", []etcdgw.Option{etcdgw.WithEndpoints("http://[::1]:2379")}},
		{"IPv6 default port", []etcdgw.Option{etcdgw.WithEndpoints("http://[::1]")}},
		{"IPv6 https", []etcdgw.Option{etcdgw.WithEndpoints("https://[2001:db8::1]:2379"), etcdgw.WithCAFile(certs.CAFile)}},
		{"trailing slash", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379/")}},
		{"base paths", []etcdgw.Option{etcdgw.WithEndpoints("http://gw.example.com/etcd", "http://gw.example.com/etcd/b/", "http://gw.example.com/%2Fescaped")}},
		{"integration options", []etcdgw.Option{etcdgw.WithProxy(nil), etcdgw.WithLogger(nil), etcdgw.WithObserver(etcdgw.Observer{}),
			etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper { return rt })}},
		{"host name", []etcdgw.Option{etcdgw.WithEndpoints("http://etcd-0.etcd:2379", "http://etcd-1.etcd:2379")}},
		{"same host, other ports", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379", "http://127.0.0.1:22379")}},
		{"same host, other schemes", []etcdgw.Option{etcdgw.WithEndpoints("http://127.0.0.1:2379", "https://127.0.0.1:2379")}},
		{"zero timeout and TTL", []etcdgw.Option{etcdgw.WithTimeout(0), etcdgw.WithTTL(0)}},
		{"every API prefix", []etcdgw.Option{etcdgw.WithAPIPrefix("/v3"), etcdgw.WithAPIPrefix("/v3beta"), etcdgw.WithAPIPrefix("/v3alpha"), etcdgw.WithAPIPrefix("")}},
		{"health check off", []etcdgw.Option{etcdgw.WithHealthCheck(0, 1)}},
		{"headers", []etcdgw.Option{etcdgw.WithHeader("X-Team", "infra"), etcdgw.WithHeader("grpc-metadata-hasleader", "true"), etcdgw.WithHeader("X-Tab", "a\tb"), etcdgw.WithHeader("X-Utf8", "café")}},
		{"mixed TLS and plain endpoints", []etcdgw.Option{etcdgw.WithEndpoints("http://a:2379", "https://b:2379"), etcdgw.WithSNI("etcd.test")}},
		{"every TLS option", []etcdgw.Option{
			etcdgw.WithEndpoints("https://127.0.0.1:2379"),
			etcdgw.WithCAFile(certs.CAFile),
			etcdgw.WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS13}),
			etcdgw.WithClientCertFiles(certs.ClientCertFile, certs.ClientKeyFile),
			etcdgw.WithClientCert(certs.ClientCertPEM, certs.ClientKeyPEM),
			etcdgw.WithSNI("etcd.test"),
			etcdgw.WithInsecureSkipVerify(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := etcdgw.New(tt.opts...)
			require.NoError(t, err)
			require.NotNil(t, c)
			assert.NoError(t, c.Close())
		})
	}
}

// closedPort returns a loopback address where nothing listens any more.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestNewDoesNoIO(t *testing.T) {
	// Nothing listens: New still succeeds, and only the first call fails.
	addr := closedPort(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints("http://" + addr))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(testCtx(t), "k")
	require.Error(t, err)
	assert.NotErrorIs(t, err, etcdgw.ErrInvalidOption)
	var opErr *net.OpError
	assert.True(t, errors.As(err, &opErr), "got %v, want the dial error", err)

	// Something listens: New does not connect to it, nor to /version.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c2, err := etcdgw.New(etcdgw.WithEndpoints("http://" + ln.Addr().String()))
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	require.NoError(t, ln.(*net.TCPListener).SetDeadline(time.Now()))
	conn, err := ln.Accept()
	if conn != nil {
		conn.Close()
	}
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "Accept: %v, want a timeout: nothing connected", err)
}

func TestCloseIsIdempotent(t *testing.T) {
	c, err := etcdgw.New(etcdgw.WithEndpoints(shared.Endpoint()))
	require.NoError(t, err)
	ctx := testCtx(t)
	// Use it first, so that Close has connections to close.
	_, err = c.Set(ctx, testPrefix(t)+"k", "v")
	require.NoError(t, err)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "a second Close")

	calls := everyUnaryCall(ctx, c)
	for name, call := range calls {
		assert.ErrorIs(t, call(), etcdgw.ErrClosed, name)
	}
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	// The endpoint accepts connections and never answers, so the call is in
	// flight until Close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	c, err := etcdgw.New(etcdgw.WithEndpoints("http://"+ln.Addr().String()), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "k")
		done <- err
	}()
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never connected")
	}
	defer conn.Close()
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, etcdgw.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the call in flight")
	}
}
