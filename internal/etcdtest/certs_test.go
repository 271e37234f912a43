package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"testing"
	"time"
)

func TestGenerateCerts(t *testing.T) {
	c, err := GenerateCerts(t.TempDir(), "etcd.test", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, c.CAFile)
	server := readCert(t, c.ServerCertFile)
	client := readCert(t, c.ClientCertFile)
	otherClient := readCert(t, c.OtherClientCertFile)

	if !ca.IsCA {
		t.Error("CA certificate: IsCA = false, want true")
	}
	if got, want := server.DNSNames, []string{"localhost", "etcd.test"}; !slices.Equal(got, want) {
		t.Errorf("server DNS SANs = %q, want %q", got, want)
	}
	var ips []string
	for _, ip := range server.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got, want := ips, []string{"127.0.0.1", "::1", "10.1.2.3"}; !slices.Equal(got, want) {
		t.Errorf("server IP SANs = %q, want %q", got, want)
	}
	// Both usages: the gateway presents the server certificate as a client.
	wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if got := server.ExtKeyUsage; !slices.Equal(got, wantEKU) {
		t.Errorf("server ExtKeyUsage = %v, want %v", got, wantEKU)
	}
	if got, want := client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}; !slices.Equal(got, want) {
		t.Errorf("client ExtKeyUsage = %v, want %v", got, want)
	}

	// etcd would take a CN for a user name once auth is enabled.
	for name, cert := range map[string]*x509.Certificate{"server": server, "client": client, "other client": otherClient} {
		if cn := cert.Subject.CommonName; cn != "" {
			t.Errorf("%s CommonName = %q, want none", name, cn)
		}
	}

	now := time.Now()
	for name, cert := range map[string]*x509.Certificate{"ca": ca, "server": server, "client": client, "other client": otherClient} {
		if !cert.NotBefore.Before(now.Add(-59*time.Minute)) || !cert.NotAfter.After(now.Add(23*time.Hour)) {
			t.Errorf("%s valid %v to %v, want from an hour ago to a day ahead", name, cert.NotBefore, cert.NotAfter)
		}
	}

	roots, err := c.CertPool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "etcd.test"}); err != nil {
		t.Errorf("verify server for etcd.test: %v", err)
	}
	clientOpts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := client.Verify(clientOpts); err != nil {
		t.Errorf("verify client: %v", err)
	}
	if _, err := otherClient.Verify(clientOpts); err == nil {
		t.Error("other client verified against the test CA, want an error")
	}
	if got, want := string(c.ClientCertPEM), readFile(t, c.ClientCertFile); got != want {
		t.Error("ClientCertPEM differs from ClientCertFile")
	}
	if got, want := string(c.ClientKeyPEM), readFile(t, c.ClientKeyFile); got != want {
		t.Error("ClientKeyPEM differs from ClientKeyFile")
	}
	if _, err := tls.LoadX509KeyPair(c.OtherClientCertFile, c.OtherClientKeyFile); err != nil {
		t.Errorf("load other client key pair: %v", err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(readFile(t, path)))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
