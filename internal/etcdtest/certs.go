package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Subjects of the generated certificates. Only the CAs have a CommonName.
//
// Under client-cert auth, etcd takes a gRPC client's user name from the CN
// of its certificate, and its gateway dials etcd's gRPC port presenting the
// server certificate. etcd disregards that certificate only when the HTTP
// request had an Accept header, so a CN on the server certificate could
// name a real user for requests without token and without Accept; with no
// CN such requests fail with "permission denied". Once auth is enabled,
// the gateway also refuses every client certificate with a CN
// ("CommonName of client sending a request against gateway will be
// ignored and not used as expected"). Go checks server names against the
// SANs only.
var (
	caSubject          = pkix.Name{CommonName: "etcdtest CA", Organization: []string{"etcdtest"}}
	otherCASubject     = pkix.Name{CommonName: "etcdtest other CA", Organization: []string{"etcdtest"}}
	serverSubject      = pkix.Name{Organization: []string{"etcdtest"}, OrganizationalUnit: []string{"server"}}
	clientSubject      = pkix.Name{Organization: []string{"etcdtest"}, OrganizationalUnit: []string{"client"}}
	otherClientSubject = pkix.Name{Organization: []string{"etcdtest"}, OrganizationalUnit: []string{"other client"}}
)

// Certs holds the files and PEM blocks made by [GenerateCerts].
//
// The server certificate is signed by the CA and carries both the serverAuth
// and clientAuth extended key usages: with client-cert auth, etcd's gateway
// dials etcd's own gRPC port presenting the server certificate as a client
// certificate, so without clientAuth every gateway call fails with
// "bad certificate". The client certificate is signed by the same CA. The
// "other" CA and its client certificate are unrelated to the first CA and
// exist for tests that expect a TLS handshake to be rejected. The server
// and client certificates have no CommonName, which etcd would otherwise
// take for a user name once auth is enabled.
type Certs struct {
	// Dir is the directory holding the files.
	Dir string

	// CAFile is the PEM certificate of the CA that signed the server and
	// client certificates.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server's PEM certificate and
	// key. The SANs are 127.0.0.1, ::1, localhost and the extra names given
	// to GenerateCerts.
	ServerCertFile string
	ServerKeyFile  string
	// ClientCertFile and ClientKeyFile are a client certificate and key
	// signed by the CA.
	ClientCertFile string
	ClientKeyFile  string

	// OtherCAFile is the PEM certificate of a second, unrelated CA.
	OtherCAFile string
	// OtherClientCertFile and OtherClientKeyFile are a client certificate
	// and key signed by the other CA, which the server must reject.
	OtherClientCertFile string
	OtherClientKeyFile  string

	// CAPEM, ClientCertPEM and ClientKeyPEM are the contents of CAFile,
	// ClientCertFile and ClientKeyFile.
	CAPEM         []byte
	ClientCertPEM []byte
	ClientKeyPEM  []byte
	// OtherClientCertPEM and OtherClientKeyPEM are the contents of
	// OtherClientCertFile and OtherClientKeyFile.
	OtherClientCertPEM []byte
	OtherClientKeyPEM  []byte
}

// GenerateCerts creates a test CA, a server certificate, a client
// certificate and a second CA with its own client certificate, and writes
// them as PEM files into dir. All keys are ECDSA P-256 and every certificate
// is valid from one hour ago to one day ahead. serverNames are added to the
// server certificate's SANs (IP addresses as IP SANs, anything else as DNS
// names) besides 127.0.0.1, ::1 and localhost.
func GenerateCerts(dir string, serverNames ...string) (*Certs, error) {
	return generateCerts(dir, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, serverNames)
}

// generateCerts is GenerateCerts with the server certificate's extended key
// usages as a parameter, so that a test can show why both are needed.
func generateCerts(dir string, serverUsages []x509.ExtKeyUsage, serverNames []string) (*Certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcdtest: create cert dir: %w", err)
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(24*time.Hour)

	ca, err := newCA(caSubject, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	otherCA, err := newCA(otherCASubject, notBefore, notAfter)
	if err != nil {
		return nil, err
	}

	serverTmpl := leafTemplate(serverSubject, notBefore, notAfter, serverUsages...)
	serverTmpl.DNSNames = []string{"localhost"}
	serverTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, name := range serverNames {
		if ip := net.ParseIP(name); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, name)
		}
	}
	server, err := ca.sign(serverTmpl)
	if err != nil {
		return nil, err
	}
	client, err := ca.sign(leafTemplate(clientSubject, notBefore, notAfter, x509.ExtKeyUsageClientAuth))
	if err != nil {
		return nil, err
	}
	otherClient, err := otherCA.sign(leafTemplate(otherClientSubject, notBefore, notAfter, x509.ExtKeyUsageClientAuth))
	if err != nil {
		return nil, err
	}

	c := &Certs{
		Dir:                 dir,
		CAFile:              filepath.Join(dir, "ca.pem"),
		ServerCertFile:      filepath.Join(dir, "server.pem"),
		ServerKeyFile:       filepath.Join(dir, "server-key.pem"),
		ClientCertFile:      filepath.Join(dir, "client.pem"),
		ClientKeyFile:       filepath.Join(dir, "client-key.pem"),
		OtherCAFile:         filepath.Join(dir, "other-ca.pem"),
		OtherClientCertFile: filepath.Join(dir, "other-client.pem"),
		OtherClientKeyFile:  filepath.Join(dir, "other-client-key.pem"),
		CAPEM:               ca.certPEM,
		ClientCertPEM:       client.certPEM,
		ClientKeyPEM:        client.keyPEM,
		OtherClientCertPEM:  otherClient.certPEM,
		OtherClientKeyPEM:   otherClient.keyPEM,
	}
	files := []struct {
		path string
		data []byte
	}{
		{c.CAFile, ca.certPEM},
		{c.ServerCertFile, server.certPEM},
		{c.ServerKeyFile, server.keyPEM},
		{c.ClientCertFile, client.certPEM},
		{c.ClientKeyFile, client.keyPEM},
		{c.OtherCAFile, otherCA.certPEM},
		{c.OtherClientCertFile, otherClient.certPEM},
		{c.OtherClientKeyFile, otherClient.keyPEM},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("etcdtest: write %s: %w", filepath.Base(f.path), err)
		}
	}
	return c, nil
}

// CertPool returns a pool holding only the test CA, for a client's RootCAs.
func (c *Certs) CertPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CAPEM) {
		return nil, errors.New("etcdtest: no certificate in CAPEM")
	}
	return pool, nil
}

// ClientTLSConfig returns a client TLS configuration that trusts the test CA
// and presents the client certificate, so it works against a server with or
// without client-cert auth.
func (c *Certs) ClientTLSConfig() (*tls.Config, error) {
	pool, err := c.CertPool()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: load client key pair: %w", err)
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// keyPair is a signed certificate with its key, parsed and as PEM.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

func newCA(subject pkix.Name, notBefore, notAfter time.Time) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return finish(tmpl, tmpl, key, key)
}

func leafTemplate(subject pkix.Name, notBefore, notAfter time.Time, usages ...x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
	}
}

// sign issues tmpl under the CA with a fresh key.
func (ca *keyPair) sign(tmpl *x509.Certificate) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: generate key: %w", err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	return finish(tmpl, ca.cert, key, ca.key)
}

func finish(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: create certificate %q: %w", tmpl.Subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: parse certificate %q: %w", tmpl.Subject, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: marshal key: %w", err)
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("etcdtest: generate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
