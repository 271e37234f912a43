package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// TestAdminCluster runs the administration calls against one 3-member
// cluster; each subtest leaves it with the same three voting members.
func TestAdminCluster(t *testing.T) {
	// Parallel: etcd refuses membership changes for the first 5 seconds of a
	// cluster, a wait other tests may use.
	t.Parallel()
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "adm"})
	c := newClientOf(t, cl.Endpoints()...)
	ids := make([]uint64, cl.Size())
	for i := range ids {
		id, err := cl.Member(i).MemberID()
		require.NoError(t, err)
		ids[i] = id
	}
	t.Run("MemberList", func(t *testing.T) { testMemberList(t, c, cl, ids) })
	t.Run("StatusOfEveryMember", func(t *testing.T) { testStatusOfEveryMember(t, c, cl, ids) })
	t.Run("HashKVEqualAcrossMembers", func(t *testing.T) { testHashKV(t, c, cl) })
	t.Run("Defragment", func(t *testing.T) { testDefragment(t, cl) })
	t.Run("PerMemberCallsLeaveHealthAlone", func(t *testing.T) { testPerMemberHealth(t, cl) })
	t.Run("AlarmList", func(t *testing.T) { testAlarmListEmpty(t, c) })
	t.Run("Learner", func(t *testing.T) { testLearner(t, c, ids) })
	t.Run("MemberAddRemove", func(t *testing.T) { testMemberAddRemove(t, c, cl) })
	t.Run("MoveLeader", func(t *testing.T) { testMoveLeader(t, c, cl, ids) })
	t.Run("MoveLeaderFromAFollowerEndpoint", func(t *testing.T) { testMoveLeaderFromFollower(t, cl, ids) })
}

func testMemberList(t *testing.T, c *etcdgw.Client, cl *etcdtest.Cluster, ids []uint64) {
	ml, err := c.MemberList(testCtx(t))
	require.NoError(t, err)
	require.Len(t, ml.Members, cl.Size())
	assert.NotZero(t, ml.Header.ClusterID)
	var gotIDs []uint64
	var gotURLs []string
	for _, m := range ml.Members {
		gotIDs = append(gotIDs, m.ID)
		gotURLs = append(gotURLs, m.ClientURLs...)
		assert.False(t, m.IsLearner, "member %x", m.ID)
		assert.NotEmpty(t, m.Name)
		assert.NotEmpty(t, m.PeerURLs)
	}
	assert.ElementsMatch(t, ids, gotIDs)
	for _, ep := range cl.Endpoints() {
		assert.Contains(t, gotURLs, ep)
	}
}

func testStatusOfEveryMember(t *testing.T, c *etcdgw.Client, cl *etcdtest.Cluster, ids []uint64) {
	ctx := testCtx(t)
	var leader uint64
	var version string
	for i, ep := range cl.Endpoints() {
		s, err := c.Status(ctx, ep)
		require.NoError(t, err, ep)
		// The answer is that member's own: the call went there only.
		assert.Equal(t, ids[i], s.Header.MemberID, ep)
		assert.NotZero(t, s.Leader)
		assert.Contains(t, ids, s.Leader)
		if i == 0 {
			leader, version = s.Leader, s.Version
		}
		assert.Equal(t, leader, s.Leader, "members disagree on the leader")
		assert.Equal(t, version, s.Version)
		assert.Equal(t, etcdtest.Version(), s.Version)
		assert.Positive(t, s.DBSize)
		assert.NotZero(t, s.RaftIndex)
		assert.NotZero(t, s.RaftTerm)
		assert.False(t, s.IsLearner)
		if etcdtest.VersionAtLeast(3, 6) {
			assert.NotEmpty(t, s.StorageVersion)
			assert.Positive(t, s.DBSizeQuota)
		}
	}
}

func testHashKV(t *testing.T, c *etcdgw.Client, cl *etcdtest.Cluster) {
	ctx := testCtx(t)
	var rev int64
	for i := range 5 {
		r, err := c.Set(ctx, fmt.Sprintf("/hashkv/%d", i), i)
		require.NoError(t, err)
		rev = r.Header.Revision
	}
	var hashes []uint32
	for _, ep := range cl.Endpoints() {
		// A follower may not have applied rev yet: wait until it has.
		var h *etcdgw.HashKVResponse
		var err error
		require.Eventually(t, func() bool {
			h, err = c.HashKV(ctx, ep, rev)
			return err == nil || errors.Is(err, errors.ErrUnsupported)
		}, 20*time.Second, 20*time.Millisecond, "HashKV(%s, %d)", ep, rev)
		if errors.Is(err, errors.ErrUnsupported) {
			require.False(t, etcdtest.VersionAtLeast(3, 6), "HashKV unsupported on etcd %s", etcdtest.Version())
			t.Skipf("HashKV on etcd %s: %v", etcdtest.Version(), err)
		}
		if etcdtest.VersionAtLeast(3, 6) {
			assert.Equal(t, rev, h.HashRevision, ep)
		}
		assert.NotZero(t, h.Hash)
		hashes = append(hashes, h.Hash)
	}
	for _, h := range hashes[1:] {
		assert.Equal(t, hashes[0], h, "hashes of the members at revision %d: %v", rev, hashes)
	}
	_, err := c.HashKV(ctx, cl.Endpoints()[0], -1)
	assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument)
}

func testDefragment(t *testing.T, cl *etcdtest.Cluster) {
	// Defragment is bounded by ctx only: a WithTimeout and attempt timeout
	// far below what a defragmentation takes do not apply to it.
	c, err := etcdgw.New(etcdgw.WithEndpoints(cl.Endpoints()...),
		etcdgw.WithTimeout(time.Microsecond), etcdgw.WithAttemptTimeout(time.Microsecond), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, err)
	defer c.Close()
	for _, ep := range cl.Endpoints() {
		require.NoError(t, c.Defragment(context.Background(), ep), ep)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, c.Defragment(ctx, cl.Endpoints()[0]), context.Canceled)
	assert.ErrorIs(t, c.Defragment(ctx, "ftp://x"), etcdgw.ErrInvalidArgument)
}

func testPerMemberHealth(t *testing.T, cl *etcdtest.Cluster) {
	dead := refusedEndpoint(t)
	// No prefix detection, which could try the dead endpoint first.
	c, err := etcdgw.New(etcdgw.WithEndpoints(cl.Endpoints()[0], dead), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	for range 3 {
		_, err := c.Status(ctx, dead)
		require.Error(t, err)
		// Never answered by another member.
		assert.ErrorIs(t, err, etcdgw.ErrUnavailable)
		assert.Contains(t, err.Error(), strings.TrimPrefix(dead, "http://"))
	}
	assert.True(t, etcdgw.EndpointHealthy(c, dead), "a per-member call marked its endpoint unhealthy")
	_, err = c.HashKV(ctx, dead, 0)
	require.Error(t, err)
	assert.Error(t, c.Defragment(ctx, dead))
	assert.True(t, etcdgw.EndpointHealthy(c, dead))
}

func testAlarmListEmpty(t *testing.T, c *etcdgw.Client) {
	a, err := c.AlarmList(testCtx(t))
	require.NoError(t, err)
	assert.Empty(t, a.Alarms)
	d, err := c.AlarmDisarm(testCtx(t), etcdgw.Alarm{})
	require.NoError(t, err)
	assert.Empty(t, d.Alarms)
	_, err = c.AlarmDisarm(testCtx(t), etcdgw.Alarm{Type: "NOPE"})
	assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument)
}

func testLearner(t *testing.T, c *etcdgw.Client, ids []uint64) {
	ctx := testCtx(t)
	// Nothing listens there: the learner never catches up.
	peer := "http://127.0.0.1:1"
	add := eventuallyAdded(t, func() (*etcdgw.MemberAddResponse, error) { return c.MemberAddAsLearner(ctx, []string{peer}) })
	id := add.Member.ID
	t.Cleanup(func() { c.MemberRemove(context.Background(), id) })
	assert.NotZero(t, id)
	assert.True(t, add.Member.IsLearner)
	assert.Equal(t, []string{peer}, add.Member.PeerURLs)
	assert.Empty(t, add.Member.ClientURLs, "a member that never started has no client URL")
	assert.Len(t, add.Members, len(ids)+1)

	_, err := c.MemberPromote(ctx, id)
	assert.ErrorIs(t, err, etcdgw.ErrLearnerNotReady)
	_, err = c.MemberPromote(ctx, ids[0])
	assert.ErrorIs(t, err, etcdgw.ErrMemberNotLearner)
	_, err = c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:2"})
	assert.ErrorIs(t, err, etcdgw.ErrTooManyLearners)
	_, err = c.MemberAddAsLearner(ctx, []string{peer})
	assert.ErrorIs(t, err, etcdgw.ErrMemberExists)

	up, err := c.MemberUpdate(ctx, id, []string{"http://127.0.0.1:3"})
	require.NoError(t, err)
	i := slices.IndexFunc(up.Members, func(m etcdgw.Member) bool { return m.ID == id })
	require.GreaterOrEqual(t, i, 0, "the learner is in MemberUpdate's list")
	assert.Equal(t, []string{"http://127.0.0.1:3"}, up.Members[i].PeerURLs)

	rm, err := c.MemberRemove(ctx, id)
	require.NoError(t, err)
	assert.Len(t, rm.Members, len(ids))
	_, err = c.MemberRemove(ctx, id)
	assert.ErrorIs(t, err, etcdgw.ErrMemberNotFound)
	_, err = c.MemberUpdate(ctx, id, []string{"http://127.0.0.1:3"})
	assert.ErrorIs(t, err, etcdgw.ErrMemberNotFound)
	_, err = c.MemberAddAsLearner(ctx, []string{"not a url"})
	assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument)
}

func testMemberAddRemove(t *testing.T, c *etcdgw.Client, cl *etcdtest.Cluster) {
	ctx := testCtx(t)
	ml, err := c.MemberList(ctx)
	require.NoError(t, err)
	_, err = c.MemberAdd(ctx, ml.Members[0].PeerURLs)
	assert.ErrorIs(t, err, etcdgw.ErrMemberExists)
	// A voter that never starts: with 3 of 4 members up the cluster keeps
	// its quorum until it is removed again.
	add := eventuallyAdded(t, func() (*etcdgw.MemberAddResponse, error) { return c.MemberAdd(ctx, []string{"http://127.0.0.1:4"}) })
	assert.False(t, add.Member.IsLearner)
	assert.Len(t, add.Members, cl.Size()+1)
	rm, err := c.MemberRemove(ctx, add.Member.ID)
	require.NoError(t, err)
	assert.Len(t, rm.Members, cl.Size())
}

// eventuallyAdded retries add while etcd refuses membership changes because
// its members have not all been connected for 5 seconds yet (strict
// reconfiguration check: "unhealthy cluster").
func eventuallyAdded(t *testing.T, add func() (*etcdgw.MemberAddResponse, error)) *etcdgw.MemberAddResponse {
	t.Helper()
	var r *etcdgw.MemberAddResponse
	var err error
	require.Eventually(t, func() bool {
		r, err = add()
		require.True(t, err == nil || errors.Is(err, etcdgw.ErrUnavailable), "%v", err)
		require.NotErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond)
	return r
}

// leaderID waits for a leader and returns its ID as the members see it.
func leaderID(t *testing.T, c *etcdgw.Client, ep string) uint64 {
	t.Helper()
	var id uint64
	require.Eventually(t, func() bool {
		s, err := c.Status(testCtx(t), ep)
		if err != nil {
			return false
		}
		id = s.Leader
		return id != 0
	}, 20*time.Second, 20*time.Millisecond)
	return id
}

// waitLeader waits until the member at ep sees want as the leader.
func waitStatusLeader(t *testing.T, c *etcdgw.Client, ep string, want uint64) {
	t.Helper()
	var got uint64
	ok := assert.Eventually(t, func() bool {
		s, err := c.Status(testCtx(t), ep)
		if err == nil {
			got = s.Leader
		}
		return got == want
	}, 20*time.Second, 20*time.Millisecond)
	if !ok {
		t.Errorf("leader %x, want %x", got, want)
	}
}

func testMoveLeader(t *testing.T, c *etcdgw.Client, cl *etcdtest.Cluster, ids []uint64) {
	ctx := testCtx(t)
	old := leaderID(t, c, cl.Endpoints()[0])
	target := ids[(slices.Index(ids, old)+1)%len(ids)]
	// etcd waits for the transfer until the request's context ends, and raft
	// drops a transfer that does not finish within an election timeout (a
	// loaded machine, a lagging target): such a move is asked again.
	for try := 1; ; try++ {
		mctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		err := c.MoveLeader(mctx, target)
		cancel()
		if err == nil {
			break
		}
		require.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown, "try %d", try)
		require.Less(t, try, 3, "MoveLeader: %v", err)
		t.Logf("MoveLeader, try %d: %v", try, err)
	}
	waitStatusLeader(t, c, cl.Endpoints()[0], target)
	assert.ErrorIs(t, c.MoveLeader(ctx, 12345), etcdgw.ErrBadLeaderTransferee)
	assert.ErrorIs(t, c.MoveLeader(ctx, 0), etcdgw.ErrInvalidArgument)
}

func testMoveLeaderFromFollower(t *testing.T, cl *etcdtest.Cluster, ids []uint64) {
	// The client knows one follower only (and a dead endpoint): the leader
	// is found through MemberList's client URLs.
	all := newClientOf(t, cl.Endpoints()...)
	old := leaderID(t, all, cl.Endpoints()[0])
	f := (slices.Index(ids, old) + 1) % len(ids)
	// A dead endpoint first: its Status fails, and the search goes on.
	c := newClientOf(t, refusedEndpoint(t), cl.Endpoints()[f])
	target := ids[(f+1)%len(ids)]
	if target == old {
		target = ids[f]
	}
	require.NoError(t, c.MoveLeader(testCtx(t), target))
	waitStatusLeader(t, all, cl.Endpoints()[0], target)
}

// TestNoSpaceRecovery fills a small backend until etcd raises NOSPACE, then
// recovers as the README says: compact, defragment each member, disarm.
func TestNoSpaceRecovery(t *testing.T) {
	srv := etcdtest.NewServer(t, etcdtest.Config{QuotaBackendBytes: 1 << 20})
	c, _ := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()))
	defer c.Close()
	ctx := testCtx(t)
	val := strings.Repeat("x", 64<<10)
	var err error
	var rev int64
	for i := 0; i < 100 && err == nil; i++ {
		var r *etcdgw.PutResponse
		r, err = c.Set(ctx, fmt.Sprintf("k%d", i%4), val)
		if err == nil {
			rev = r.Header.Revision
		}
	}
	require.ErrorIs(t, err, etcdgw.ErrNoSpace)
	a, err := c.AlarmList(ctx)
	require.NoError(t, err)
	require.Len(t, a.Alarms, 1)
	assert.Equal(t, "NOSPACE", a.Alarms[0].Type)
	s, err := c.Status(ctx, srv.Endpoint())
	require.NoError(t, err)
	assert.Equal(t, a.Alarms[0].MemberID, s.Header.MemberID)

	// The recovery.
	require.NoError(t, c.Compact(ctx, rev))
	require.NoError(t, c.Defragment(ctx, srv.Endpoint()))
	d, err := c.AlarmDisarm(ctx, etcdgw.Alarm{})
	require.NoError(t, err)
	assert.Equal(t, a.Alarms, d.Alarms)
	a, err = c.AlarmList(ctx)
	require.NoError(t, err)
	assert.Empty(t, a.Alarms)
	_, err = c.Set(ctx, "after", "ok")
	assert.NoError(t, err)
}

// TestAdminCallsServerLacks: on servers without the route (HashKV before
// etcd 3.5.10, AuthStatus on 3.4, MemberPromote and learners before 3.4), the
// call fails with an error that wraps errors.ErrUnsupported, in the shape of
// each gateway's "no such path" answer.
func TestAdminCallsServerLacks(t *testing.T) {
	notFound := map[string]func(http.ResponseWriter){
		"3.4, 3.5": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(404)
			io.WriteString(w, "404 page not found\n")
		},
		"3.6+": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"code":5, "message":"Not Found"}`)
		},
	}
	for shape, answer := range notFound {
		t.Run(shape, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/version" {
					io.WriteString(w, `{"etcdserver":"3.3.27","etcdcluster":"3.3.0"}`)
					return
				}
				answer(w)
			}))
			t.Cleanup(srv.Close)
			c := newClientOf(t, srv.URL)
			ctx := testCtx(t)
			_, err := c.HashKV(ctx, srv.URL, 0)
			require.ErrorIs(t, err, errors.ErrUnsupported)
			assert.Contains(t, err.Error(), "3.5.10")
			var e *etcdgw.Error
			assert.True(t, errors.As(err, &e), "the answer stays reachable")
			_, err = c.AuthStatus(ctx)
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			_, err = c.MemberPromote(ctx, 1)
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			// etcd 3.3 would add a voter: refused before anything is sent.
			_, err = c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			// A call every version has is not "unsupported": this is not
			// etcd's gateway.
			_, err = c.MemberList(ctx)
			require.Error(t, err)
			assert.NotErrorIs(t, err, errors.ErrUnsupported)
		})
	}
}
