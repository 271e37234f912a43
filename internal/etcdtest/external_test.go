package etcdtest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProcessFlags(t *testing.T) {
	s, err := newServer(Config{
		MaxRequestBytes:             4096,
		MaxTxnOps:                   7,
		QuotaBackendBytes:           1 << 20,
		WatchProgressNotifyInterval: 150 * time.Millisecond,
		AuthToken:                   "simple",
		AuthTokenTTL:                42,
		HeartbeatInterval:           20 * time.Millisecond,
		ElectionTimeout:             200 * time.Millisecond,
		ClientCertAuth:              true,
	}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.setPorts(2379, 2380, 0)
	common := []string{
		"--listen-client-urls=https://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster-state=new",
		"--max-request-bytes=4096",
		"--max-txn-ops=7",
		"--quota-backend-bytes=1048576",
		"--auth-token=simple",
		"--auth-token-ttl=42",
		"--heartbeat-interval=20",
		"--election-timeout=200",
		"--cert-file=" + s.certs.ServerCertFile,
		"--trusted-ca-file=" + s.certs.CAFile,
		"--client-cert-auth",
	}
	tests := []struct {
		version   string
		want, not []string
	}{
		{"3.4.23", []string{"--experimental-watch-progress-notify-interval=150ms"}, []string{"--unsafe-no-fsync"}},
		{"3.5.35", []string{"--experimental-watch-progress-notify-interval=150ms", "--unsafe-no-fsync"}, nil},
		{"3.6.16", []string{"--watch-progress-notify-interval=150ms", "--unsafe-no-fsync"}, nil},
		{"3.7.3", []string{"--watch-progress-notify-interval=150ms", "--unsafe-no-fsync"}, nil},
	}
	for _, tt := range tests {
		flags := s.processFlags(tt.version)
		for _, want := range append(common, tt.want...) {
			if !slices.Contains(flags, want) {
				t.Errorf("%s: flags lack %s: %s", tt.version, want, strings.Join(flags, " "))
			}
		}
		for _, not := range tt.not {
			if slices.Contains(flags, not) {
				t.Errorf("%s: flags have %s, which that version lacks", tt.version, not)
			}
		}
	}
}

func TestMajorMinor(t *testing.T) {
	tests := []struct {
		in         string
		maj, minor int
		ok         bool
	}{
		{"3.4.23", 3, 4, true},
		{"3.7.3", 3, 7, true},
		{"3.6.0-rc.1", 3, 6, true},
		{"3", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		maj, minor, ok := majorMinor(tt.in)
		if maj != tt.maj || minor != tt.minor || ok != tt.ok {
			t.Errorf("majorMinor(%q) = %d, %d, %v, want %d, %d, %v", tt.in, maj, minor, ok, tt.maj, tt.minor, tt.ok)
		}
	}
}

func TestVersion(t *testing.T) {
	v := Version()
	if _, _, ok := majorMinor(v); !ok {
		t.Fatalf("Version() = %q, want major.minor.patch", v)
	}
	if !VersionAtLeast(3, 4) || VersionAtLeast(4, 0) {
		t.Errorf("VersionAtLeast with Version() = %q: want at least 3.4 and below 4.0", v)
	}
}

// TestCheckProcesses leaves a server open, as a test that forgets Close
// would. It must not run in parallel: CheckProcesses kills every process.
func TestCheckProcesses(t *testing.T) {
	if !External() {
		t.Skip("embedded etcd runs no process")
	}
	s, err := StartServer(Config{Name: "forgotten"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := CheckProcesses(); err == nil || !strings.Contains(err.Error(), "forgotten") {
		t.Errorf("CheckProcesses() with a server open = %v, want an error naming it", err)
	}
	if s.healthy() {
		t.Error("the server still answers after CheckProcesses")
	}
	if err := CheckProcesses(); err != nil {
		t.Errorf("CheckProcesses() again = %v, want nil", err)
	}
}
