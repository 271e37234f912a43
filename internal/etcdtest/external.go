package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	"golang.org/x/crypto/bcrypt"
)

// BinaryEnv is the environment variable that switches the package to
// external mode: when it names an etcd binary, servers and clusters run that
// binary as subprocesses instead of embedding etcd, so that the same tests
// run against other etcd versions (scripts/compat.sh). [Server.Etcd]
// returns nil in that mode and [Version] reports the binary's version.
const BinaryEnv = "ETCDGW_ETCD_BINARY"

// stopGrace is how long Stop lets an etcd process shut down on SIGTERM
// before it kills it. etcd waits for open gateway streams when it stops,
// longer than tests should.
const stopGrace = time.Second

// External reports whether servers run the etcd binary named by
// $ETCDGW_ETCD_BINARY as subprocesses rather than embedded.
func External() bool { return os.Getenv(BinaryEnv) != "" }

var binaryVersion = sync.OnceValues(func() (string, error) {
	bin := os.Getenv(BinaryEnv)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("etcdtest: %s --version: %w", bin, err)
	}
	m := regexp.MustCompile(`etcd Version: (\S+)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("etcdtest: %s --version: no version in %q", bin, out)
	}
	return string(m[1]), nil
})

// Version returns the version of the etcd that servers run, such as "3.7.3"
// when embedded or "3.4.23" for a binary in external mode, or "" when the
// binary cannot tell.
func Version() string {
	if !External() {
		return version.Version
	}
	v, _ := binaryVersion()
	return v
}

// VersionAtLeast reports whether [Version] is major.minor or newer, for
// tests of behaviour that older servers lack.
func VersionAtLeast(major, minor int) bool {
	maj, mnr, ok := majorMinor(Version())
	return ok && (maj > major || maj == major && mnr >= minor)
}

func majorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// processes tracks the etcd subprocesses that run, so that a test binary
// can make sure none outlives it (see CheckProcesses).
var processes struct {
	sync.Mutex
	m map[*process]string // process → member name
}

// CheckProcesses kills any etcd subprocess still running and returns an
// error naming them. A test binary in external mode calls it after its
// tests, beside the goroutine leak check: a Server or Cluster that was not
// closed leaves a process, not a goroutine. It returns nil in embedded
// mode.
func CheckProcesses() error {
	processes.Lock()
	var left []*process
	var names []string
	for p, name := range processes.m {
		left = append(left, p)
		names = append(names, name)
	}
	processes.Unlock()
	for _, p := range left {
		p.kill()
	}
	if len(names) > 0 {
		return fmt.Errorf("etcdtest: etcd processes left running: %s", strings.Join(names, ", "))
	}
	return nil
}

// process is a running etcd subprocess.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	log  string        // file holding the process's output
}

// startProcess starts the etcd binary for s without waiting for it to be
// ready.
func (s *Server) startProcess() (*process, error) {
	bin := os.Getenv(BinaryEnv)
	v, err := binaryVersion()
	if err != nil {
		return nil, err
	}
	// Beside the data, in the server's temporary directory when it has
	// one, so that Close removes it.
	logPath := s.dataDir + ".log"
	if s.root != "" {
		logPath = filepath.Join(s.root, s.name+".log")
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, fmt.Errorf("etcdtest: start %s: %w", s.name, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: start %s: %w", s.name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, s.processFlags(v)...)
	cmd.Env = processEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("etcdtest: start %s: %w", s.name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	processes.Lock()
	if processes.m == nil {
		processes.m = make(map[*process]string)
	}
	processes.m[p] = s.name
	processes.Unlock()
	go func() {
		cmd.Wait()
		processes.Lock()
		delete(processes.m, p)
		processes.Unlock()
		close(p.done)
	}()
	return p, nil
}

// processEnv is the test process's environment without ETCD_ variables,
// which etcd would take for flags.
func processEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// processFlags translates the Config into command-line flags for an etcd
// binary of version v, as embedConfig does for embedded etcd.
func (s *Server) processFlags(v string) []string {
	heartbeat, election := s.raftTiming()
	state := "new"
	if s.started {
		state = "existing"
	}
	var clientURLs []string
	for _, u := range s.clientURLs() {
		clientURLs = append(clientURLs, u.String())
	}
	flags := []string{
		"--name=" + s.name,
		"--data-dir=" + s.dataDir,
		"--listen-client-urls=" + strings.Join(clientURLs, ","),
		"--advertise-client-urls=" + strings.Join(clientURLs, ","),
		"--listen-peer-urls=" + s.peerURL.String(),
		"--initial-advertise-peer-urls=" + s.peerURL.String(),
		"--initial-cluster=" + s.cluster,
		"--initial-cluster-token=" + s.token,
		"--initial-cluster-state=" + state,
		"--heartbeat-interval=" + strconv.FormatInt(heartbeat.Milliseconds(), 10),
		"--election-timeout=" + strconv.FormatInt(election.Milliseconds(), 10),
		"--bcrypt-cost=" + strconv.Itoa(bcrypt.MinCost),
		"--logger=zap",
		"--log-level=warn",
	}
	major, minor, _ := majorMinor(v)
	newer := func(maj, mnr int) bool { return major > maj || major == maj && minor >= mnr }
	if newer(3, 5) {
		// 3.4 has no such flag; its tests simply fsync.
		flags = append(flags, "--unsafe-no-fsync")
	}
	if s.cfg.secure() {
		flags = append(flags, "--cert-file="+s.certs.ServerCertFile, "--key-file="+s.certs.ServerKeyFile)
		if s.cfg.ClientCertAuth {
			flags = append(flags, "--trusted-ca-file="+s.certs.CAFile, "--client-cert-auth")
		}
	}
	if s.cfg.MaxRequestBytes != 0 {
		flags = append(flags, "--max-request-bytes="+strconv.FormatUint(uint64(s.cfg.MaxRequestBytes), 10))
	}
	if s.cfg.MaxTxnOps != 0 {
		flags = append(flags, "--max-txn-ops="+strconv.FormatUint(uint64(s.cfg.MaxTxnOps), 10))
	}
	if s.cfg.QuotaBackendBytes != 0 {
		flags = append(flags, "--quota-backend-bytes="+strconv.FormatInt(s.cfg.QuotaBackendBytes, 10))
	}
	if d := s.cfg.WatchProgressNotifyInterval; d != 0 {
		// 3.6 graduated the experimental flag and 3.7 dropped its old name.
		name := "--experimental-watch-progress-notify-interval="
		if newer(3, 6) {
			name = "--watch-progress-notify-interval="
		}
		flags = append(flags, name+d.String())
	}
	if s.cfg.AuthToken != "" {
		flags = append(flags, "--auth-token="+s.cfg.AuthToken)
	}
	if s.cfg.AuthTokenTTL != 0 {
		flags = append(flags, "--auth-token-ttl="+strconv.FormatUint(uint64(s.cfg.AuthTokenTTL), 10))
	}
	return flags
}

// awaitProcess waits until p answers /health, and kills it if it exits or
// the start timeout passes first.
func (s *Server) awaitProcess(p *process) error {
	timeout := s.cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	deadline := time.Now().Add(timeout)
	for {
		if s.healthy() {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("etcdtest: start %s: etcd exited: %s", s.name, p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("etcdtest: start %s: not ready after %v: %s", s.name, timeout, p.logTail())
		}
	}
}

// healthy reports whether the server answers /health with a healthy
// status, which it does once it has a leader.
func (s *Server) healthy() bool {
	var body struct {
		Health string `json:"health"`
	}
	return s.getJSON("/health", &body) == nil && body.Health == "true"
}

// getJSON gets path from the server's client URL and decodes the JSON
// answer into out.
func (s *Server) getJSON(path string, out any) error {
	b, err := s.fetch(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// fetch sends a request to the server's client URL and returns the body of
// a 200 answer. It uses a transport of its own without keep-alives, so no
// connection or goroutine outlives it.
func (s *Server) fetch(method, path string, body []byte) ([]byte, error) {
	var tlsCfg *tls.Config
	if s.cfg.secure() {
		var err error
		if tlsCfg, err = s.certs.ClientTLSConfig(); err != nil {
			return nil, err
		}
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true},
		Timeout:   time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// metric returns the line of the server's /metrics that starts with name
// (a metric name with its labels, or part of them), without the name. The
// metrics need no auth token, so this works with auth enabled, where
// /v3/maintenance/status is refused from etcd 3.5 on.
func (s *Server) metric(name string) (string, error) {
	b, err := s.fetch(http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("no metric %s", name)
}

// processMemberID reads the running process's member ID off its metrics
// (etcd_server_id{server_id="<hex>"} 1, from etcd 3.4 on).
func (s *Server) processMemberID() (uint64, error) {
	rest, err := s.metric(`etcd_server_id{server_id="`)
	if err != nil {
		return 0, err
	}
	hex, _, _ := strings.Cut(rest, `"`)
	return strconv.ParseUint(hex, 16, 64)
}

// processLeader reports whether the running process leads its cluster.
func (s *Server) processLeader() bool {
	rest, err := s.metric("etcd_server_is_leader ")
	return err == nil && strings.TrimSpace(rest) == "1"
}

// stop ends the process, first with SIGTERM so that a leader hands over
// leadership, and with SIGKILL after stopGrace.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.kill()
	}
}

// kill ends the process at once, as a crash would, and waits until it is
// gone and its ports are free.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the end of the process's output, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	const limit = 2000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "no output"
	}
	return string(b)
}
