package etcdgw

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"slices"
)

// tlsOptions collects the TLS options; New builds one tls.Config from them.
type tlsOptions struct {
	base       *tls.Config
	skipVerify bool
	certs      []tls.Certificate
	roots      *x509.CertPool
	sni        string
	set        []string // names of the options given, for the error when no endpoint is https
}

func (o *tlsOptions) note(name string) { o.set = append(o.set, name) }

// WithTLSConfig starts the TLS configuration of https endpoints from cfg (it is
// cloned; the other TLS options then apply on top of it, whatever their order).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *config) error {
		if cfg == nil {
			return invalidOption("WithTLSConfig: nil config")
		}
		c.tls.base = cfg.Clone()
		c.tls.note("WithTLSConfig")
		return nil
	}
}

// WithInsecureSkipVerify turns off the verification of the server certificate:
// for tests only, as anyone in the middle can then read and change the
// traffic. [lua-resty-etcd: ssl_verify = false]
func WithInsecureSkipVerify() Option {
	return func(c *config) error {
		c.tls.skipVerify = true
		c.tls.note("WithInsecureSkipVerify")
		return nil
	}
}

// WithClientCertFiles presents the certificate and key in these PEM files to
// the server (mTLS). New fails if they cannot be read or do not match.
// [lua-resty-etcd: ssl_cert_path, ssl_key_path]
func WithClientCertFiles(certFile, keyFile string) Option {
	return func(c *config) error {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return invalidOption("WithClientCertFiles(%q, %q): %v", certFile, keyFile, err)
		}
		c.tls.certs = append(c.tls.certs, cert)
		c.tls.note("WithClientCertFiles")
		return nil
	}
}

// WithClientCert presents this PEM certificate and key to the server (mTLS).
// [lua-resty-etcd: ssl_cert, ssl_key]
func WithClientCert(certPEM, keyPEM []byte) Option {
	return func(c *config) error {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return invalidOption("WithClientCert: %v", err)
		}
		c.tls.certs = append(c.tls.certs, cert)
		c.tls.note("WithClientCert")
		return nil
	}
}

// WithCAFile trusts the CA certificates in this PEM file, instead of the
// system's, to verify the server.
func WithCAFile(path string) Option {
	return func(c *config) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return invalidOption("WithCAFile: %v", err)
		}
		if c.tls.roots == nil {
			c.tls.roots = x509.NewCertPool()
		}
		if !c.tls.roots.AppendCertsFromPEM(pem) {
			return invalidOption("WithCAFile(%q): no PEM certificate in the file", path)
		}
		c.tls.note("WithCAFile")
		return nil
	}
}

// WithSNI sends serverName as the TLS server name (SNI) and verifies the
// server's certificate against it instead of the endpoint's host: for an
// endpoint given by IP address, or behind a proxy. [lua-resty-etcd: sni]
func WithSNI(serverName string) Option {
	return func(c *config) error {
		if serverName == "" {
			return invalidOption("WithSNI: empty server name")
		}
		c.tls.sni = serverName
		c.tls.note("WithSNI")
		return nil
	}
}

// build returns the tls.Config for https endpoints.
func (o *tlsOptions) build() *tls.Config {
	cfg := o.base
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.skipVerify {
		cfg.InsecureSkipVerify = true
	}
	if len(o.certs) > 0 {
		// Clone copies the slice header only: clip it so that the append
		// cannot write into spare capacity of the caller's array.
		cfg.Certificates = append(slices.Clip(cfg.Certificates), o.certs...)
	}
	if o.roots != nil {
		cfg.RootCAs = o.roots
	}
	if o.sni != "" {
		cfg.ServerName = o.sni
	}
	return cfg
}

func (o *tlsOptions) check(anyTLS bool) error {
	if len(o.set) > 0 && !anyTLS {
		return invalidOption("%s given, but no endpoint is https", o.set[0])
	}
	return nil
}
