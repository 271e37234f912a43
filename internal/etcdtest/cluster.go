package etcdtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is a multi-member etcd cluster in this process, every member on
// its own loopback ports. Members can be stopped and restarted one at a
// time through [Cluster.Member], or all together. Its methods are safe for
// concurrent use.
type Cluster struct {
	members []*Server
	root    string // temporary directory removed in Close

	closeOnce sync.Once
	closeErr  error
}

// StartCluster starts an n-member cluster and waits until every member
// serves requests. All members share cfg; TLS members share one set of
// certificates. The caller must Close the cluster.
func StartCluster(n int, cfg Config) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdtest: cluster size %d, want at least 1", n)
	}
	root, err := os.MkdirTemp("", "etcdtest-cluster-")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: create temp dir: %w", err)
	}
	c := &Cluster{root: root}
	base := cfg.Dir
	if base == "" {
		base = filepath.Join(root, "data")
	}
	if cfg.secure() && cfg.Certs == nil {
		if cfg.Certs, err = GenerateCerts(filepath.Join(root, "certs"), cfg.ServerNames...); err != nil {
			c.Close()
			return nil, err
		}
	}

	for range bindAttempts {
		err = c.start(n, cfg, base)
		if err == nil {
			return c, nil
		}
		c.stopAll()
		// A member that started has written a membership naming ports
		// that are given up now: the next attempt starts from scratch. A
		// directory that cannot be removed fails that attempt with a
		// clearer error than this one.
		for _, s := range c.members {
			os.RemoveAll(s.dataDir)
		}
		c.members = nil
		if !isAddrInUse(err) {
			break
		}
	}
	c.Close()
	return nil, err
}

// NewCluster is StartCluster for tests: it fails t when the cluster does
// not start and closes the cluster when t ends.
func NewCluster(t testing.TB, n int, cfg Config) *Cluster {
	t.Helper()
	c, err := StartCluster(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// start creates the members on new ports and starts them.
func (c *Cluster) start(n int, cfg Config, dir string) error {
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	var initial []string
	for i := range n {
		s, err := newServer(cfg, dir, i)
		if err != nil {
			return err
		}
		s.setPorts(ports[3*i], ports[3*i+1], ports[3*i+2])
		c.members = append(c.members, s)
		initial = append(initial, s.name+"="+s.peerURL.String())
	}
	for _, s := range c.members {
		s.cluster = strings.Join(initial, ",")
		s.token = "etcdtest-cluster-" + strconv.Itoa(ports[0])
	}
	if External() {
		return c.startProcesses()
	}
	// Launch the members one after the other. A new member asks every
	// peer whether it is already part of the cluster, and a peer whose
	// port is bound but not yet served makes it wait a full second, so a
	// member is launched only once the ones before it serve their peer
	// ports. Readiness needs a quorum, so that is awaited concurrently.
	launched := make([]*embed.Etcd, n)
	for i, s := range c.members {
		if launched[i], err = s.launch(); err != nil {
			for _, e := range launched[:i] {
				e.Close()
			}
			return err
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range c.members {
		wg.Go(func() {
			if errs[i] = s.await(launched[i]); errs[i] == nil {
				s.mu.Lock()
				s.setRunningLocked(launched[i])
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startProcesses is the second half of start in external mode: it starts
// every member's process and waits until all are ready.
func (c *Cluster) startProcesses() error {
	procs := make([]*process, len(c.members))
	for i, s := range c.members {
		p, err := s.startProcess()
		if err != nil {
			for _, p := range procs[:i] {
				p.kill()
			}
			return err
		}
		procs[i] = p
	}
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, s := range c.members {
		wg.Go(func() {
			if errs[i] = s.awaitProcess(procs[i]); errs[i] != nil {
				procs[i].kill()
				return
			}
			s.mu.Lock()
			s.proc = procs[i]
			s.started = true
			s.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Member returns member i, counting from 0.
func (c *Cluster) Member(i int) *Server { return c.members[i] }

// Endpoints returns the client URLs of all members, stopped ones included.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, s := range c.members {
		eps[i] = s.Endpoint()
	}
	return eps
}

// Certs returns the certificates the members serve with, or nil without
// TLS.
func (c *Cluster) Certs() *Certs {
	if len(c.members) == 0 {
		return nil
	}
	return c.members[0].Certs()
}

// Leader returns the index of the member that leads the cluster, or -1
// when no running member is the leader, as during an election.
func (c *Cluster) Leader() int {
	for i, s := range c.members {
		if External() {
			if s.Running() && s.processLeader() {
				return i
			}
			continue
		}
		if e := s.Etcd(); e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops every member at once, keeping their data, as a power cut
// would; Restart brings the cluster back. Stop is idempotent.
func (c *Cluster) Stop() error {
	c.each(func(s *Server) error { s.kill(); return nil })
	return nil
}

// Restart stops the members that run and starts all of them again on their
// ports with their data, together: one member alone has no quorum and
// would never be ready. It waits until every member is ready.
func (c *Cluster) Restart() error {
	c.Stop()
	return c.each((*Server).Restart)
}

// each calls f on every member concurrently and joins the errors.
func (c *Cluster) each(f func(*Server) error) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, s := range c.members {
		wg.Go(func() { errs[i] = f(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopAll stops and closes the members concurrently, without leadership
// transfers: see Server.kill.
func (c *Cluster) stopAll() {
	c.each(func(s *Server) error {
		s.kill()
		return s.Close()
	})
}

// Close stops every member and removes the cluster's directories. It is
// idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.stopAll()
		if err := os.RemoveAll(c.root); err != nil {
			c.closeErr = fmt.Errorf("etcdtest: remove temp dir: %w", err)
		}
	})
	return c.closeErr
}
