package etcdtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestServerGateway(t *testing.T) {
	s := NewServer(t, Config{})
	if got := s.Endpoint(); !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want http://127.0.0.1:port", got)
	}
	if got, want := s.Endpoint(), "http://"+s.ClientAddr(); got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}
	if s.Certs() != nil {
		t.Errorf("Certs() = %+v, want nil without TLS", s.Certs())
	}
	gw := newGateway(t, s.Endpoint(), nil)

	status, body := gw.do(http.MethodGet, "/version", nil)
	var version map[string]string
	if err := json.Unmarshal(body, &version); err != nil || status != http.StatusOK {
		t.Fatalf("GET /version = %d %s (%v), want 200 JSON", status, body, err)
	}
	if got, want := version["etcdserver"], Version(); got != want {
		t.Errorf("etcdserver version = %q, want %q", got, want)
	}

	status, body = gw.do(http.MethodGet, "/health", nil)
	var health map[string]string
	if err := json.Unmarshal(body, &health); err != nil || status != http.StatusOK {
		t.Fatalf("GET /health = %d %s (%v), want 200 JSON", status, body, err)
	}
	if got, want := health["health"], "true"; got != want {
		t.Errorf("health = %q, want %q", got, want)
	}

	putRev := gw.put("greeting", "hello, world")
	value, found, rev := gw.get("greeting")
	if !found || value != "hello, world" {
		t.Errorf("range greeting = %q (found %v), want %q", value, found, "hello, world")
	}
	if rev != putRev {
		t.Errorf("range revision = %d, want the put's %d", rev, putRev)
	}

	var st struct {
		Header struct {
			MemberID uint64 `json:"member_id,string"`
		} `json:"header"`
	}
	gw.wantOK("/v3/kv/range", map[string]any{"key": []byte("greeting")}, &st)
	if id, err := s.MemberID(); err != nil || id == 0 || id != st.Header.MemberID {
		t.Errorf("MemberID() = %d, %v; want the answers' member_id %d", id, err, st.Header.MemberID)
	}
}

func TestServerRestartKeepsDataAndEndpoint(t *testing.T) {
	s := NewServer(t, Config{})
	endpoint, dir := s.Endpoint(), s.Dir()
	gw := newGateway(t, endpoint, nil)
	putRev := gw.put("k", "v1")

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := s.Endpoint(); got != endpoint {
		t.Errorf("Endpoint() after Restart = %q, want %q", got, endpoint)
	}
	if got := s.Dir(); got != dir {
		t.Errorf("Dir() after Restart = %q, want %q", got, dir)
	}
	value, found, rev := gw.get("k")
	if !found || value != "v1" {
		t.Errorf("after Restart, k = %q (found %v), want v1", value, found)
	}
	if rev != putRev {
		t.Errorf("after Restart, revision = %d, want %d", rev, putRev)
	}

	// Stop then Restart must work too, and revisions keep counting.
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if s.Running() {
		t.Error("Running() after Stop = true, want false")
	}
	if _, _, err := gw.try(http.MethodGet, "/version", nil); err == nil {
		t.Error("GET /version on a stopped server succeeded, want a dial error")
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart after Stop: %v", err)
	}
	if got, want := gw.put("k", "v2"), putRev+1; got != want {
		t.Errorf("put after restarts: revision %d, want %d", got, want)
	}
}

func TestServerCloseRemovesTempDir(t *testing.T) {
	s, err := StartServer(Config{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{s.Dir(), filepath.Dir(s.Certs().CAFile)}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("after Close, stat %s: %v, want not exist", dir, err)
		}
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart after Close succeeded, want an error")
	}
}

func TestServerOwnDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := StartServer(Config{Dir: dir, Name: "custom"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Dir(); got != dir {
		t.Errorf("Dir() = %q, want %q", got, dir)
	}
	if got, want := s.Name(), "custom"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A caller's directory is the caller's: Close leaves the data.
	if _, err := os.Stat(filepath.Join(dir, "member")); err != nil {
		t.Errorf("after Close, data dir: %v, want it kept", err)
	}
}

func TestServerLimits(t *testing.T) {
	s := NewServer(t, Config{MaxTxnOps: 2, MaxRequestBytes: 1024})
	gw := newGateway(t, s.Endpoint(), nil)

	op := map[string]any{"request_put": map[string]any{"key": []byte("a"), "value": []byte("b")}}
	status, body := gw.do(http.MethodPost, "/v3/kv/txn", map[string]any{"success": []any{op, op, op}})
	if status == http.StatusOK || !strings.Contains(string(body), "too many operations in txn request") {
		t.Errorf("txn with 3 ops under MaxTxnOps 2 = %d %s, want too many operations", status, body)
	}
	status, body = gw.do(http.MethodPost, "/v3/kv/put", map[string]any{"key": []byte("big"), "value": make([]byte, 4096)})
	if status == http.StatusOK || !strings.Contains(string(body), "request is too large") {
		t.Errorf("4 KiB put under MaxRequestBytes 1024 = %d %s, want request is too large", status, body)
	}
}

func TestServerLeaseMinimumTTL(t *testing.T) {
	// The short election timeout of a single member keeps etcd's lease
	// minimum at one second, so a TTL of 1 is granted as asked.
	gw := newGateway(t, NewServer(t, Config{}).Endpoint(), nil)
	var resp struct {
		TTL int64 `json:"TTL,string"`
	}
	gw.wantOK("/v3/lease/grant", map[string]any{"TTL": "1"}, &resp)
	if got, want := resp.TTL, int64(1); got != want {
		t.Errorf("granted TTL = %d, want %d", got, want)
	}
}

func TestServerStopEndsGatewayWatches(t *testing.T) {
	s := NewServer(t, Config{})
	gw := newGateway(t, s.Endpoint(), nil)
	w := startWatch(t, gw.client, gw.base, "k")

	// etcd alone would wait its request timeout (over 5 s) for the open
	// watch response before cutting it.
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop with an open watch took %v, want well under the 5 s request timeout", d)
	}
	last := w.drain(t)
	if External() {
		// A stopped etcd process takes its gateway along: the stream is
		// cut without a last line.
		return
	}
	// The gateway ends the stream with a gRPC Unavailable error line.
	if !strings.Contains(last, `"error":{"code":14`) {
		t.Errorf("last watch line = %q, want an error with code 14", last)
	}
}

func TestServerRestartOnTakenPort(t *testing.T) {
	s := NewServer(t, Config{})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", s.ClientAddr())
	if err != nil {
		t.Fatalf("take the stopped server's port: %v", err)
	}
	err = s.Restart()
	ln.Close()
	if !isAddrInUse(err) {
		t.Fatalf("Restart on a taken port: %v, want address already in use", err)
	}
	if s.Running() {
		t.Error("Running() after a failed Restart = true, want false")
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart once the port is free: %v", err)
	}
}

func TestServerPassesOptionsToEtcd(t *testing.T) {
	cfg := Config{
		MaxRequestBytes:             4096,
		MaxTxnOps:                   7,
		QuotaBackendBytes:           1 << 20,
		WatchProgressNotifyInterval: 150 * time.Millisecond,
		AuthToken:                   "simple",
		AuthTokenTTL:                42,
		HeartbeatInterval:           20 * time.Millisecond,
		ElectionTimeout:             200 * time.Millisecond,
	}
	if External() {
		t.Skip("needs the embedded etcd's config; TestProcessFlags covers external mode")
	}
	got := NewServer(t, cfg).Etcd().Config()
	checks := []struct {
		name      string
		got, want any
	}{
		{"MaxRequestBytes", got.MaxRequestBytes, cfg.MaxRequestBytes},
		{"MaxTxnOps", got.MaxTxnOps, cfg.MaxTxnOps},
		{"QuotaBackendBytes", got.QuotaBackendBytes, cfg.QuotaBackendBytes},
		{"WatchProgressNotifyInterval", got.WatchProgressNotifyInterval, cfg.WatchProgressNotifyInterval},
		{"AuthToken", got.AuthToken, cfg.AuthToken},
		{"AuthTokenTTL", got.AuthTokenTTL, cfg.AuthTokenTTL},
		{"TickMs", got.TickMs, uint(20)},
		{"ElectionMs", got.ElectionMs, uint(200)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("etcd %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestServerQuota(t *testing.T) {
	s := NewServer(t, Config{QuotaBackendBytes: 256 << 10})
	gw := newGateway(t, s.Endpoint(), nil)
	status, body := gw.do(http.MethodPost, "/v3/kv/put", map[string]any{"key": []byte("big"), "value": make([]byte, 512<<10)})
	if status == http.StatusOK || !strings.Contains(string(body), "database space exceeded") {
		t.Errorf("512 KiB put under a 256 KiB quota = %d %s, want database space exceeded", status, body)
	}
}

func TestServerWatchProgressNotify(t *testing.T) {
	s := NewServer(t, Config{WatchProgressNotifyInterval: 100 * time.Millisecond})
	gw := newGateway(t, s.Endpoint(), nil)
	rev := gw.put("other", "x")

	body, err := json.Marshal(map[string]any{"create_request": map[string]any{"key": []byte("quiet"), "progress_notify": true}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := gw.client.Post(s.Endpoint()+"/v3/watch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// The created line, then a progress notification: a header, no events.
	for _, want := range []string{`"created":true`, `"revision":"` + strconv.FormatInt(rev, 10) + `"`} {
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, want) || strings.Contains(line, `"events"`) {
			t.Fatalf("watch line = %q (%v), want one with %s and no events", line, err, want)
		}
	}
}
