package etcdtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// authenticate returns a gateway client that sends the token of name.
func authenticate(t *testing.T, gw *gateway, name, password string) *gateway {
	t.Helper()
	var resp struct {
		Token string `json:"token"`
	}
	gw.wantOK("/v3/auth/authenticate", map[string]string{"name": name, "password": password}, &resp)
	if resp.Token == "" {
		t.Fatalf("authenticate %s: empty token", name)
	}
	authed := *gw
	authed.header = http.Header{"Authorization": {resp.Token}}
	return &authed
}

// wantRefused posts body to path and requires a gateway error whose message
// contains want.
func wantRefused(t *testing.T, gw *gateway, path string, body any, want string) {
	t.Helper()
	status, b := gw.do(http.MethodPost, path, body)
	var gwErr gatewayError
	if err := json.Unmarshal(b, &gwErr); status == http.StatusOK || err != nil || !strings.Contains(gwErr.Message, want) {
		t.Errorf("POST %s = %d %s, want an error with %q", path, status, b, want)
	}
}

func TestEnableAuth(t *testing.T) {
	s := NewServer(t, Config{})
	err := EnableAuth(s.Endpoint(), nil, "rootpw",
		User{Name: "reader", Password: "rpw", ReadPrefix: []string{"config/"}},
		User{Name: "writer", Password: "wpw", WritePrefix: []string{"app/"}},
		User{Name: "everything", Password: "epw", ReadPrefix: []string{""}},
	)
	if err != nil {
		t.Fatalf("EnableAuth: %v", err)
	}
	gw := newGateway(t, s.Endpoint(), nil)

	key := func(k string) map[string]any { return map[string]any{"key": []byte(k)} }
	put := func(k string) map[string]any { return map[string]any{"key": []byte(k), "value": []byte("v")} }

	wantRefused(t, gw, "/v3/kv/range", key("config/a"), "user name is empty")
	wantRefused(t, gw, "/v3/auth/authenticate", map[string]string{"name": "root", "password": "wrong"}, "authentication failed")

	root := authenticate(t, gw, "root", "rootpw")
	root.put("config/a", "1")
	if value, _, _ := root.get("config/a"); value != "1" {
		t.Errorf("root range config/a = %q, want 1", value)
	}

	reader := authenticate(t, gw, "reader", "rpw")
	if value, _, _ := reader.get("config/a"); value != "1" {
		t.Errorf("reader range config/a = %q, want 1", value)
	}
	wantRefused(t, reader, "/v3/kv/put", put("config/a"), "permission denied")
	wantRefused(t, reader, "/v3/kv/range", key("app/a"), "permission denied")

	writer := authenticate(t, gw, "writer", "wpw")
	writer.put("app/a", "2")
	if value, _, _ := writer.get("app/a"); value != "2" {
		t.Errorf("writer range app/a = %q, want 2", value)
	}
	wantRefused(t, writer, "/v3/kv/put", put("config/a"), "permission denied")

	// An empty prefix covers the whole key space.
	everything := authenticate(t, gw, "everything", "epw")
	for _, k := range []string{"config/a", "app/a"} {
		if _, found, _ := everything.get(k); !found {
			t.Errorf("range %s with the empty read prefix: not found", k)
		}
	}
	wantRefused(t, everything, "/v3/kv/put", put("app/b"), "permission denied")

	// Auth is stored in etcd and survives a restart.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, gw, "/v3/kv/range", key("config/a"), "user name is empty")
}

func TestEnableAuthOverMTLS(t *testing.T) {
	s := NewServer(t, Config{ClientCertAuth: true})
	cfg, err := s.Certs().ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := EnableAuth(s.Endpoint(), cfg, "rootpw"); err != nil {
		t.Fatalf("EnableAuth: %v", err)
	}
	// The gateway dials etcd's gRPC port with the server certificate, and
	// etcd takes that certificate's empty CN for the user name unless the
	// HTTP request had an Accept header: without a token, requests fail
	// with "permission denied" rather than "user name is empty".
	gw := newGateway(t, s.Endpoint(), cfg)
	wantRefused(t, gw, "/v3/kv/range", map[string]any{"key": []byte("k")}, "permission denied")
	withAccept := *gw
	withAccept.header = http.Header{"Accept": {"application/json"}}
	wantRefused(t, &withAccept, "/v3/kv/range", map[string]any{"key": []byte("k")}, "user name is empty")

	root := authenticate(t, gw, "root", "rootpw")
	if _, found, _ := root.get("k"); found {
		t.Error("range k as root: found, want no key")
	}
}

func TestEnableAuthErrors(t *testing.T) {
	// Bad arguments are refused before anything is written, so the cases
	// can share a server.
	s := NewServer(t, Config{})
	tests := []struct {
		name  string
		root  string
		users []User
		want  string
	}{
		{"empty root password", "", nil, "empty root password"},
		{"user named root", "pw", []User{{Name: "root", Password: "x"}}, `user name "root"`},
		{"user without name", "pw", []User{{Password: "x"}}, `user name ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := EnableAuth(s.Endpoint(), nil, tt.root, tt.users...)
			if err == nil || !strings.HasPrefix(err.Error(), "etcdtest: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("EnableAuth = %v, want an etcdtest error with %q", err, tt.want)
			}
		})
	}
}
