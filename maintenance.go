package etcdgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// StatusResponse is the status of one member.
type StatusResponse struct {
	Header                  ResponseHeader
	Version, StorageVersion string // StorageVersion: etcd 3.6 and later
	// DBSize is the size of the backend database file, DBSizeInUse the part
	// of it in use (what a defragmentation would leave), DBSizeQuota the size
	// at which etcd raises the NOSPACE alarm (etcd 3.6 and later).
	DBSize, DBSizeInUse, DBSizeQuota      int64
	Leader                                uint64 // the leader's member ID; 0 when there is none
	RaftIndex, RaftTerm, RaftAppliedIndex uint64
	IsLearner                             bool
	Errors                                []string // such as "NOSPACE" alarms the member reports
}

// Alarm is an alarm raised on a member. In AlarmDisarm, a zero field matches
// every value: Alarm{} disarms every alarm.
type Alarm struct {
	MemberID uint64
	Type     string // "NOSPACE", "CORRUPT"
}

// AlarmResponse is the answer of AlarmList (the alarms raised) and of
// AlarmDisarm (the alarms disarmed).
type AlarmResponse struct {
	Header ResponseHeader
	Alarms []Alarm
}

// HashKVResponse is the hash of one member's keys up to a revision. Members
// whose HashKV differ at the same HashRevision (and CompactRevision) have
// diverged: one is corrupt.
type HashKVResponse struct {
	Header          ResponseHeader
	Hash            uint32
	CompactRevision int64 // the member's compacted revision; -1 when never compacted
	HashRevision    int64 // the revision hashed
}

// memberEndpoint is the endpoint of a per-member call: one of the client's own
// endpoints when the URL is one of them (normalized as WithEndpoints does), or
// one made for the call (a URL from MemberList), reached with the client's TLS
// and auth.
func (c *Client) memberEndpoint(what, raw string) (*endpoint.Endpoint, error) {
	u, host, isTLS, err := parseEndpoint(raw)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), ErrInvalidOption.Error()+": ")
		return nil, invalidArgument("%s: %s", what, msg)
	}
	for _, ep := range c.ring.Endpoints() {
		if ep.URL == u {
			return ep, nil
		}
	}
	return &endpoint.Endpoint{URL: u, Host: host, TLS: isTLS}, nil
}

// routeMissing reports whether e is the answer of a gateway that does not
// serve the path at all (the server's version lacks the call), rather than
// an etcd error of the call: a 404, 405 or 501 whose message is not etcd's
// ("404 page not found" of 3.4 and 3.5, "Not Found" of 3.6 and later, "Method
// Not Allowed").
func routeMissing(e *Error) bool {
	switch e.HTTPStatus {
	case 404, 405, 501:
		return !strings.Contains(e.Message, "etcdserver:")
	}
	return false
}

// unsupported turns the error of a call the server does not serve into one
// that wraps errors.ErrUnsupported, naming the etcd version that has it.
func unsupported(err error, what, since string) error {
	var e *Error
	if !errors.As(err, &e) || !routeMissing(e) {
		return err
	}
	e.hint = ""
	return &multiError{
		msg:  fmt.Sprintf("%s: %s does not serve it (etcd %s or later has it)", what, e.Endpoint, since),
		errs: []error{errors.ErrUnsupported, e},
	}
}

// versionBefore reports whether the server's version is older than
// major.minor, asking GET /version when the client has not learnt it yet.
func (c *Client) versionBefore(ctx context.Context, major, minor int) (bool, error) {
	v := c.serverVer.Load()
	if v == nil {
		if _, err := c.Version(ctx); err != nil {
			return false, err
		}
		if v = c.serverVer.Load(); v == nil {
			return false, nil
		}
	}
	return versionLess(*v, major, minor), nil
}

// versionLess reports whether the version "3.4.23" is older than major.minor;
// a version it cannot read is not.
func versionLess(v string, major, minor int) bool {
	ma, rest, _ := strings.Cut(v, ".")
	mi, _, _ := strings.Cut(rest, ".")
	a, err1 := strconv.Atoi(ma)
	b, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil {
		return false
	}
	return a < major || a == major && b < minor
}

// unsupportedVersion is the error of a call the server's version lacks.
func unsupportedVersion(what string, c *Client, since string) error {
	v := ""
	if p := c.serverVer.Load(); p != nil {
		v = *p
	}
	return fmt.Errorf("etcdgw: %s: etcd %s does not support it (etcd %s or later does): %w", what, v, since, errors.ErrUnsupported)
}

// Status returns the status of the member at endpoint (one of WithEndpoints,
// or a client URL from MemberList). The call goes to that member only, and its
// outcome changes no endpoint's health.
func (c *Client) Status(ctx context.Context, endpoint string) (*StatusResponse, error) {
	ep, err := c.memberEndpoint("Status", endpoint)
	if err != nil {
		return nil, err
	}
	return c.status(ctx, ep)
}

func (c *Client) status(ctx context.Context, ep *endpoint.Endpoint) (*StatusResponse, error) {
	var s wire.StatusResponse
	err := c.unary(ctx, &rpc{path: wire.PathStatus, body: []byte("{}"), idempotent: true, ep: ep, member: true},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeStatus(b, &s) })
	if err != nil {
		return nil, err
	}
	return &StatusResponse{
		Header:  ResponseHeader(s.Header),
		Version: s.Version, StorageVersion: s.StorageVersion,
		DBSize: s.DBSize, DBSizeInUse: s.DBSizeInUse, DBSizeQuota: s.DBSizeQuota,
		Leader:    s.Leader,
		RaftIndex: s.RaftIndex, RaftTerm: s.RaftTerm, RaftAppliedIndex: s.RaftAppliedIndex,
		IsLearner: s.IsLearner,
		Errors:    s.Errors,
	}, nil
}

// Defragment defragments the backend database of the member at endpoint,
// giving the space of deleted and compacted keys back to the file system.
// The member serves nothing else meanwhile, which takes seconds to minutes on
// a big database: defragment one member at a time. Only ctx bounds it:
// neither WithTimeout nor WithAttemptTimeout applies. It goes to that member
// only and changes no endpoint's health.
func (c *Client) Defragment(ctx context.Context, endpoint string) error {
	ep, err := c.memberEndpoint("Defragment", endpoint)
	if err != nil {
		return err
	}
	var h wire.Header
	err = c.unary(ctx, &rpc{path: wire.PathDefragment, body: []byte("{}"), idempotent: true, ep: ep, member: true, noTimeout: true},
		bodyOnly(func(b []byte) error { return wire.DecodeHeaderOnly(b, &h) }))
	return err
}

// bodyOnly adapts a decoder of the answer's body to unary's decode.
func bodyOnly(f func([]byte) error) func([]byte, *endpoint.Endpoint) error {
	return func(b []byte, _ *endpoint.Endpoint) error { return f(b) }
}

// HashKV returns the hash of the keys of the member at endpoint up to revision
// rev (0: its latest), to compare members for corruption. It goes to that
// member only and changes no endpoint's health. It needs etcd 3.5.10 or later:
// on older servers it fails with an error that wraps errors.ErrUnsupported.
func (c *Client) HashKV(ctx context.Context, endpoint string, rev int64) (*HashKVResponse, error) {
	if rev < 0 {
		return nil, invalidArgument("HashKV: negative revision %d", rev)
	}
	ep, err := c.memberEndpoint("HashKV", endpoint)
	if err != nil {
		return nil, err
	}
	var h wire.HashKVResponse
	err = c.unary(ctx, &rpc{path: wire.PathHashKV, body: wire.AppendHashKV(nil, rev), idempotent: true, ep: ep, member: true},
		bodyOnly(func(b []byte) error { return wire.DecodeHashKV(b, &h) }))
	if err != nil {
		return nil, unsupported(err, "HashKV", "3.5.10")
	}
	return &HashKVResponse{Header: ResponseHeader(h.Header), Hash: h.Hash, CompactRevision: h.CompactRevision, HashRevision: h.HashRevision}, nil
}

// AlarmList returns the alarms raised in the cluster. A NOSPACE alarm makes
// every write fail with ErrNoSpace: see AlarmDisarm.
func (c *Client) AlarmList(ctx context.Context) (*AlarmResponse, error) {
	return c.alarm(ctx, wire.AlarmGet, Alarm{})
}

// AlarmDisarm disarms the alarms that a matches: a zero field matches every
// value, so Alarm{} disarms every alarm, as etcdctl alarm disarm does. It
// returns the alarms disarmed.
//
// Disarming NOSPACE only helps once there is room: compact the history
// (Compact), defragment every member (Defragment), then disarm; see the
// README's "Administration".
func (c *Client) AlarmDisarm(ctx context.Context, a Alarm) (*AlarmResponse, error) {
	switch a.Type {
	case "", "NOSPACE", "CORRUPT":
	default:
		return nil, invalidArgument("AlarmDisarm: alarm type %q: want \"NOSPACE\", \"CORRUPT\" or \"\" (every type)", a.Type)
	}
	if a.MemberID != 0 && a.Type != "" {
		return c.alarm(ctx, wire.AlarmDeactivate, a)
	}
	list, err := c.AlarmList(ctx)
	if err != nil {
		return nil, err
	}
	out := &AlarmResponse{Header: list.Header, Alarms: []Alarm{}}
	for _, m := range list.Alarms {
		if (a.MemberID != 0 && m.MemberID != a.MemberID) || (a.Type != "" && m.Type != a.Type) {
			continue
		}
		r, err := c.alarm(ctx, wire.AlarmDeactivate, m)
		if err != nil {
			return nil, err
		}
		out.Header = r.Header
		out.Alarms = append(out.Alarms, r.Alarms...)
	}
	return out, nil
}

func (c *Client) alarm(ctx context.Context, action int, a Alarm) (*AlarmResponse, error) {
	var r wire.AlarmResponse
	err := c.unary(ctx, &rpc{path: wire.PathAlarm, body: wire.AppendAlarm(nil, action, a.MemberID, a.Type), idempotent: action == wire.AlarmGet},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeAlarm(b, &r) })
	if err != nil {
		return nil, err
	}
	out := &AlarmResponse{Header: ResponseHeader(r.Header), Alarms: make([]Alarm, len(r.Alarms))}
	for i, m := range r.Alarms {
		out.Alarms[i] = Alarm(m)
	}
	return out, nil
}

// MoveLeader makes the member with ID transfereeID the leader. Only the leader
// can hand leadership over, so MoveLeader finds it: first among the client's
// endpoints, by their Status (the client URLs MemberList reports may be
// unreachable from here: behind a load balancer, on a unix socket), then
// through MemberList. It fails with ErrBadLeaderTransferee when there is no
// such voting member.
func (c *Client) MoveLeader(ctx context.Context, transfereeID uint64) error {
	if transfereeID == 0 {
		return invalidArgument("MoveLeader: member ID 0")
	}
	ep, err := c.leaderEndpoint(ctx)
	if err != nil {
		return fmt.Errorf("etcdgw: MoveLeader: finding the leader: %w", trimPrefix(err))
	}
	var h wire.Header
	err = c.unary(ctx, &rpc{path: wire.PathMoveLeader, body: wire.AppendMoveLeader(nil, transfereeID), ep: ep, member: true},
		func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeHeaderOnly(b, &h) })
	return err
}

// trimPrefix is err with its "etcdgw: " prefix dropped from the message, to
// wrap it under another that has it.
func trimPrefix(err error) error {
	return &prefixless{err}
}

type prefixless struct{ error }

func (p *prefixless) Error() string { return strings.TrimPrefix(p.error.Error(), "etcdgw: ") }
func (p *prefixless) Unwrap() error { return p.error }

// statusOf is the Status of ep, one of untried members to ask: a member that
// does not answer gets half of the deadline left, not all of it.
func (c *Client) statusOf(ctx context.Context, ep *endpoint.Endpoint, untried int) (*StatusResponse, error) {
	if dl, ok := ctx.Deadline(); ok && untried > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(dl)/2)
		defer cancel()
	}
	return c.status(ctx, ep)
}

// leaderEndpoint finds the endpoint of the leader: one of the client's own
// endpoints whose Status says it leads, or else a client URL of the leader
// from MemberList.
func (c *Client) leaderEndpoint(ctx context.Context) (*endpoint.Endpoint, error) {
	var leader uint64
	var lastErr error
	eps := c.ring.Endpoints()
	for i, ep := range eps {
		s, err := c.statusOf(ctx, ep, len(eps)-i)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			lastErr = err
			continue
		}
		if s.Leader != 0 && s.Leader == s.Header.MemberID {
			return ep, nil
		}
		if s.Leader != 0 {
			leader = s.Leader
		}
	}
	if leader == 0 {
		if lastErr != nil {
			return nil, lastErr
		}
		return nil, ErrNoLeader
	}
	ml, err := c.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ml.Members {
		if m.ID != leader {
			continue
		}
		for _, u := range m.ClientURLs {
			if ep, err := c.memberEndpoint("MoveLeader", u); err == nil {
				return ep, nil
			}
		}
		return nil, fmt.Errorf("%w: the leader %x has no client URL this client can use", ErrUnavailable, leader)
	}
	return nil, fmt.Errorf("%w: the leader %x is not in the member list", ErrUnavailable, leader)
}

// snapshotTrailer is the size of the sha256 etcd sends after a snapshot's
// data; etcdutl recognizes a snapshot that has it by its size
// (size % 512 == 32, the data being whole 512-byte pages).
const snapshotTrailer = sha256.Size

// snapshotMaxLine bounds one message of a snapshot stream, and so the memory
// a snapshot takes: etcd sends 32 KiB of data per message (about 44 KB of
// JSON).
const snapshotMaxLine = 4 << 20

// Snapshot streams the backend database of the member at endpoint to w,
// followed by its 32-byte sha256 as etcd sends it: what w receives is the
// file that etcdutl snapshot restore takes. It verifies, as etcdutl does,
// that the checksum matches the data and that the total size modulo 512 is
// 32, and returns the bytes written. A checksum that does not match, a
// stream cut short or a stream that ends with an error fail the call (with
// an error matching ErrMalformedResponse, ErrUnavailable or an *Error): what
// w received then is not a snapshot. Memory stays bounded whatever the size
// of the database.
//
// Only ctx bounds it: neither WithTimeout nor WithAttemptTimeout applies. It
// goes to that member only, is not retried, and changes no endpoint's
// health. Use SnapshotToFile to write a file safely.
func (c *Client) Snapshot(ctx context.Context, endpoint string, w io.Writer) (int64, error) {
	return c.snapshot(ctx, endpoint, w, nil)
}

// SnapshotToFile saves a Snapshot of the member at endpoint to path: it
// writes a temporary file beside it, syncs it to disk and renames it to path
// once the snapshot is verified, so that path never holds a partial or
// corrupt snapshot; the temporary file is removed on failure. progress, if
// not nil, is called after each chunk with the bytes written and the
// expected total (data and checksum, as etcd announced it in its first
// message). It returns the size of the file.
func (c *Client) SnapshotToFile(ctx context.Context, endpoint, path string, progress func(done, total int64)) (int64, error) {
	if path == "" {
		return 0, invalidArgument("SnapshotToFile: empty path")
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".part*")
	if err != nil {
		return 0, fmt.Errorf("etcdgw: SnapshotToFile: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := c.snapshot(ctx, endpoint, f, progress)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("etcdgw: SnapshotToFile: %w", err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("etcdgw: SnapshotToFile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("etcdgw: SnapshotToFile: %w", err)
	}
	ok = true
	// The rename lasts once the directory is synced; not every file system
	// can sync a directory, and the snapshot itself is safe by now.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}

func (c *Client) snapshot(ctx context.Context, endpoint string, w io.Writer, progress func(done, total int64)) (int64, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	ep, err := c.memberEndpoint("Snapshot", endpoint)
	if err != nil {
		return 0, err
	}
	// Close ends the stream too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	prefix, err := c.apiPrefix(ctx)
	if err != nil {
		return 0, err
	}
	if c.auth != nil {
		if _, err := c.token(ctx); err != nil {
			return 0, err
		}
	}
	for authRetried := false; ; authRetried = true {
		hdrs := c.headers.Load()
		resp, err := c.openSnapshot(ctx, ep, prefix, hdrs)
		if err == nil {
			defer resp.Body.Close()
			return c.readSnapshot(ctx, ep, resp.Body, w, progress)
		}
		var e *Error
		if errors.As(err, &e) && c.auth != nil && !authRetried && e.needsNewToken() {
			if _, err := c.refreshToken(ctx, hdrs.token); err != nil {
				return 0, err
			}
			continue
		}
		return 0, err
	}
}

// openSnapshot sends the snapshot request and returns the answer of a
// stream that started, or the error.
func (c *Client) openSnapshot(ctx context.Context, ep *endpoint.Endpoint, prefix string, hdrs *requestHeaders) (*http.Response, error) {
	r := &rpc{path: wire.PathSnapshot, body: []byte("{}"), idempotent: true}
	req, err := c.newRequest(ctx, ep, prefix+wire.PathSnapshot, r, hdrs)
	if err != nil {
		return nil, fmt.Errorf("etcdgw: Snapshot: %w", err)
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return nil, c.snapshotBroken(ctx, ep, err)
	}
	ep.SetProto(resp.ProtoMajor)
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := newError(wire.ParseErrorBody(resp.StatusCode, b), ep.URL)
	e.hint = statusHint(e)
	return nil, e
}

// snapshotBroken is the error of a snapshot stream that failed to start or
// broke: the context's error when ctx or Close ended it, else a transport
// error (ErrUnavailable).
func (c *Client) snapshotBroken(ctx context.Context, ep *endpoint.Endpoint, err error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return &multiError{msg: "Snapshot", errs: []error{ctx.Err(), &transportError{endpoint: ep.URL, err: err}}}
	}
	return &multiError{msg: "Snapshot", errs: []error{&transportError{endpoint: ep.URL, err: err, hint: transportHint(ep.TLS, ep.Proto() == 0, err)}}}
}

// readSnapshot copies the stream's blobs to w and verifies them.
func (c *Client) readSnapshot(ctx context.Context, ep *endpoint.Endpoint, body io.Reader, w io.Writer, progress func(done, total int64)) (int64, error) {
	lr := wire.NewLineReader(body, 64<<10, min(c.maxBody, snapshotMaxLine))
	var v snapshotVerifier
	var msg wire.SnapshotResponse
	var written, total int64
	for first := true; ; first = false {
		line, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				return written, fmt.Errorf("%w: Snapshot from %s: %v", ErrMalformedResponse, ep.URL, err)
			}
			return written, c.snapshotBroken(ctx, ep, err)
		}
		st, err := wire.DecodeSnapshotLine(line, &msg)
		if err != nil {
			if lr.Tail() {
				return written, fmt.Errorf("%w: Snapshot from %s: the stream was cut in the middle of a message", ErrMalformedResponse, ep.URL)
			}
			return written, malformed(ep.URL, err)
		}
		if st != nil {
			return written, &multiError{msg: "Snapshot", errs: []error{newError(*st, ep.URL)}}
		}
		if first {
			total = int64(msg.RemainingBytes) + int64(len(msg.Blob)) + snapshotTrailer
		}
		v.add(msg.Blob)
		n, err := w.Write(msg.Blob)
		written += int64(n)
		if err != nil {
			return written, fmt.Errorf("etcdgw: Snapshot: writing: %w", err)
		}
		if progress != nil {
			progress(written, total)
		}
	}
	if err := v.check(written, total); err != nil {
		return written, fmt.Errorf("%w: Snapshot from %s: %v", ErrMalformedResponse, ep.URL, err)
	}
	return written, nil
}

// snapshotVerifier checks a snapshot as it streams by: the sha256 of every
// byte but the last 32, which must be that sha256. It holds the last 32 bytes
// seen back from the hash until more come.
type snapshotVerifier struct {
	h    hash.Hash
	held []byte
}

func (v *snapshotVerifier) add(b []byte) {
	if v.h == nil {
		v.h = sha256.New()
		v.held = make([]byte, 0, 2*snapshotTrailer)
	}
	if len(b) >= snapshotTrailer {
		v.h.Write(v.held)
		v.h.Write(b[:len(b)-snapshotTrailer])
		v.held = append(v.held[:0], b[len(b)-snapshotTrailer:]...)
		return
	}
	v.held = append(v.held, b...)
	if extra := len(v.held) - snapshotTrailer; extra > 0 {
		v.h.Write(v.held[:extra])
		v.held = append(v.held[:0], v.held[extra:]...)
	}
}

// check verifies the whole stream of size bytes, of which etcd announced
// total (0: unknown).
func (v *snapshotVerifier) check(size, total int64) error {
	switch {
	case size == 0:
		return errors.New("the stream ended before any data")
	case total > 0 && size < total:
		return fmt.Errorf("the stream ended after %d of %d bytes", size, total)
	case size%512 != snapshotTrailer:
		return fmt.Errorf("size %d is not whole 512-byte pages and a 32-byte sha256 (the stream was cut or is not a snapshot)", size)
	case !bytes.Equal(v.h.Sum(nil), v.held):
		return errors.New("sha256 mismatch: the snapshot is corrupt")
	case total > 0 && size != total:
		return fmt.Errorf("size %d is not the %d bytes etcd announced", size, total)
	}
	return nil
}
