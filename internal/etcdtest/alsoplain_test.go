package etcdtest

import (
	"net/http"
	"strings"
	"testing"
)

// A TLS server with AlsoPlain serves the same store over https and over
// plain HTTP.
func TestServerAlsoPlain(t *testing.T) {
	s := NewServer(t, Config{TLS: true, AlsoPlain: true})
	if !strings.HasPrefix(s.Endpoint(), "https://") || !strings.HasPrefix(s.PlainEndpoint(), "http://") {
		t.Fatalf("Endpoint() = %q, PlainEndpoint() = %q, want https and http", s.Endpoint(), s.PlainEndpoint())
	}
	tlsCfg, err := s.Certs().ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	put := newGateway(t, s.Endpoint(), tlsCfg)
	if status, body := put.do(http.MethodPost, "/v3/kv/put", map[string]string{"key": "a2V5", "value": "dg=="}); status != http.StatusOK {
		t.Fatalf("put over https = %d %s", status, body)
	}
	get := newGateway(t, s.PlainEndpoint(), nil)
	status, body := get.do(http.MethodPost, "/v3/kv/range", map[string]string{"key": "a2V5"})
	if status != http.StatusOK || !strings.Contains(string(body), `"value":"dg=="`) {
		t.Fatalf("range over http = %d %s, want the value put over https", status, body)
	}
	if plain := NewServer(t, Config{}); plain.PlainEndpoint() != plain.Endpoint() {
		t.Errorf("without AlsoPlain, PlainEndpoint() = %q, want Endpoint() %q", plain.PlainEndpoint(), plain.Endpoint())
	}
}
