package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestTLSServer(t *testing.T) {
	s := NewServer(t, Config{TLS: true})
	if got := s.Endpoint(); !strings.HasPrefix(got, "https://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want https://127.0.0.1:port", got)
	}
	roots, err := s.Certs().CertPool()
	if err != nil {
		t.Fatal(err)
	}

	gw := newGateway(t, s.Endpoint(), &tls.Config{RootCAs: roots})
	gw.put("secure", "yes")
	if value, _, _ := gw.get("secure"); value != "yes" {
		t.Errorf("range secure over https = %q, want yes", value)
	}

	// Without the test CA the server's certificate is not trusted.
	_, _, err = newGateway(t, s.Endpoint(), nil).try(http.MethodGet, "/version", nil)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET /version without the CA: %v, want x509.UnknownAuthorityError", err)
	}

	// Without client-cert auth, no client certificate is needed.
	if status, body := gw.do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version without client cert = %d %s, want 200", status, body)
	}
}

func TestMTLSServer(t *testing.T) {
	s := NewServer(t, Config{ClientCertAuth: true, ServerNames: []string{"etcd.test"}})
	c := s.Certs()
	good, err := c.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	roots := good.RootCAs
	other, err := tls.LoadX509KeyPair(c.OtherClientCertFile, c.OtherClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}

	// A gateway call, not just /version: the gateway dials etcd's gRPC port
	// presenting the server certificate, which fails with "bad
	// certificate" unless that certificate also allows clientAuth.
	gw := newGateway(t, s.Endpoint(), good)
	gw.put("mtls", "ok")
	if value, _, _ := gw.get("mtls"); value != "ok" {
		t.Errorf("range mtls = %q, want ok", value)
	}

	// The extra SAN works when the client names the server by it.
	byName := good.Clone()
	byName.ServerName = "etcd.test"
	if status, body := newGateway(t, s.Endpoint(), byName).do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Errorf("GET /version with ServerName etcd.test = %d %s, want 200", status, body)
	}

	rejected := map[string]*tls.Config{
		"no client certificate":   {RootCAs: roots},
		"certificate of other CA": {RootCAs: roots, Certificates: []tls.Certificate{other}},
	}
	for name, cfg := range rejected {
		t.Run(name, func(t *testing.T) {
			_, _, err := newGateway(t, s.Endpoint(), cfg).try(http.MethodPost, "/v3/kv/range", map[string]any{"key": []byte("mtls")})
			// "remote error" means the server refused the handshake.
			if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
				t.Errorf("range: %v, want the server to reject the handshake", err)
			}
		})
	}
}

// TestMTLSServerCertWithoutClientAuth shows why GenerateCerts gives the
// server certificate the clientAuth usage: without it, etcd serves TLS
// fine but its gateway cannot reach its own gRPC port.
func TestMTLSServerCertWithoutClientAuth(t *testing.T) {
	certs, err := generateCerts(t.TempDir(), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(t, Config{ClientCertAuth: true, Certs: certs})
	cfg, err := certs.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	gw := newGateway(t, s.Endpoint(), cfg)
	if status, body := gw.do(http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Fatalf("GET /version = %d %s, want 200: TLS itself works", status, body)
	}
	status, body := gw.do(http.MethodPost, "/v3/kv/range", map[string]any{"key": []byte("k")})
	// The gateway reports its failed dial as gRPC Unavailable (14), with
	// "bad certificate" or, if etcd hung up first, a broken pipe.
	var gwErr gatewayError
	if err := json.Unmarshal(body, &gwErr); status != http.StatusServiceUnavailable || err != nil || gwErr.Code != 14 {
		t.Errorf("range through the gateway = %d %s, want 503 with code 14", status, body)
	}
}
