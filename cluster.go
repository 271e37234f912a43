package etcdgw

import (
	"context"
	"net/url"

	"github.com/etcdgw/etcdgw/internal/endpoint"
	"github.com/etcdgw/etcdgw/internal/wire"
)

// Member is a member of the etcd cluster. A member added but not started yet
// has no Name and no ClientURLs.
type Member struct {
	ID                   uint64
	Name                 string
	PeerURLs, ClientURLs []string
	IsLearner            bool
}

// MemberListResponse is the answer of MemberList, MemberRemove, MemberUpdate
// and MemberPromote: the cluster's members after the call.
type MemberListResponse struct {
	Header  ResponseHeader
	Members []Member
}

// MemberAddResponse is the answer of MemberAdd and MemberAddAsLearner: the new
// member, and the cluster's members with it.
type MemberAddResponse struct {
	Header  ResponseHeader
	Member  Member
	Members []Member
}

// adminRPCNames are the administration RPCs by path, for messages.
var adminRPCNames = map[string]string{
	wire.PathMemberList: "MemberList", wire.PathMemberAdd: "MemberAdd", wire.PathMemberRemove: "MemberRemove",
	wire.PathMemberUpdate: "MemberUpdate", wire.PathMemberPromote: "MemberPromote",
	wire.PathStatus: "Status", wire.PathAlarm: "Alarm", wire.PathDefragment: "Defragment",
	wire.PathHashKV: "HashKV", wire.PathSnapshot: "Snapshot", wire.PathMoveLeader: "MoveLeader",
	wire.PathAuthEnable: "AuthEnable", wire.PathAuthDisable: "AuthDisable", wire.PathAuthStatus: "AuthStatus",
	wire.PathUserAdd: "UserAdd", wire.PathUserGet: "UserGet", wire.PathUserList: "UserList",
	wire.PathUserDelete: "UserDelete", wire.PathUserChangePW: "UserChangePassword",
	wire.PathUserGrantRole: "UserGrantRole", wire.PathUserRevokeRole: "UserRevokeRole",
	wire.PathRoleAdd: "RoleAdd", wire.PathRoleGet: "RoleGet", wire.PathRoleList: "RoleList",
	wire.PathRoleDelete: "RoleDelete", wire.PathRoleGrantPerm: "RoleGrantPermission",
	wire.PathRoleRevokePerm: "RoleRevokePermission",
}

func init() {
	for path, name := range adminRPCNames {
		rpcNames[path] = name
	}
}

// MemberList lists the cluster's members, read through the leader on etcd 3.5
// and later (a linearizable list), from the member that answers on 3.4.
func (c *Client) MemberList(ctx context.Context) (*MemberListResponse, error) {
	r, err := c.memberCall(ctx, &rpc{path: wire.PathMemberList, body: wire.AppendMemberList(nil, true), idempotent: true})
	if err != nil {
		return nil, err
	}
	return &MemberListResponse{Header: ResponseHeader(r.Header), Members: members(r.Members)}, nil
}

// MemberAdd adds a voting member with these peer URLs. The new member must
// then be started with the cluster's members in its initial cluster (and
// --initial-cluster-state existing). It fails with ErrMemberExists when a
// member has one of these peer URLs. Prefer MemberAddAsLearner, then
// MemberPromote: a voter that is slow to start costs the cluster its quorum.
func (c *Client) MemberAdd(ctx context.Context, peerURLs []string) (*MemberAddResponse, error) {
	return c.memberAdd(ctx, "MemberAdd", peerURLs, false)
}

// MemberAddAsLearner adds a learner with these peer URLs: a member that
// receives the log but does not vote until MemberPromote. It fails with
// ErrTooManyLearners when the cluster has as many learners as it allows (one
// by default), and ErrMemberExists as MemberAdd does.
func (c *Client) MemberAddAsLearner(ctx context.Context, peerURLs []string) (*MemberAddResponse, error) {
	return c.memberAdd(ctx, "MemberAddAsLearner", peerURLs, true)
}

func (c *Client) memberAdd(ctx context.Context, what string, peerURLs []string, learner bool) (*MemberAddResponse, error) {
	if len(peerURLs) == 0 {
		return nil, invalidArgument("%s: no peer URL", what)
	}
	for _, u := range peerURLs {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return nil, invalidArgument("%s: peer URL %q: want scheme://host:port", what, u)
		}
	}
	if learner {
		// etcd 3.3 ignores isLearner: the member would be a voter.
		if old, err := c.versionBefore(ctx, 3, 4); err != nil {
			return nil, err
		} else if old {
			return nil, unsupportedVersion(what, c, "3.4")
		}
	}
	r, err := c.memberCall(ctx, &rpc{path: wire.PathMemberAdd, body: wire.AppendMemberAdd(nil, peerURLs, learner)})
	if err != nil {
		return nil, err
	}
	return &MemberAddResponse{Header: ResponseHeader(r.Header), Member: Member(r.Member), Members: members(r.Members)}, nil
}

// MemberRemove removes the member with this ID from the cluster. It fails with
// ErrMemberNotFound when there is none.
func (c *Client) MemberRemove(ctx context.Context, id uint64) (*MemberListResponse, error) {
	return c.memberIDCall(ctx, wire.PathMemberRemove, wire.AppendMemberID(nil, id))
}

// MemberUpdate sets the peer URLs of the member with this ID. It fails with
// ErrMemberNotFound when there is none, and ErrMemberExists when another
// member has one of these URLs.
func (c *Client) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) (*MemberListResponse, error) {
	if len(peerURLs) == 0 {
		return nil, invalidArgument("MemberUpdate: no peer URL")
	}
	return c.memberIDCall(ctx, wire.PathMemberUpdate, wire.AppendMemberUpdate(nil, id, peerURLs))
}

// MemberPromote makes the learner with this ID a voting member. It fails with
// ErrLearnerNotReady while the learner has not caught up with the leader (try
// again later), ErrMemberNotLearner for a voting member, and
// ErrMemberNotFound when there is no such member.
func (c *Client) MemberPromote(ctx context.Context, id uint64) (*MemberListResponse, error) {
	return c.memberIDCall(ctx, wire.PathMemberPromote, wire.AppendMemberID(nil, id))
}

func (c *Client) memberIDCall(ctx context.Context, path string, body []byte) (*MemberListResponse, error) {
	r, err := c.memberCall(ctx, &rpc{path: path, body: body})
	if err != nil {
		return nil, err
	}
	return &MemberListResponse{Header: ResponseHeader(r.Header), Members: members(r.Members)}, nil
}

func (c *Client) memberCall(ctx context.Context, r *rpc) (*wire.MemberResponse, error) {
	var m wire.MemberResponse
	err := c.unary(ctx, r, func(b []byte, _ *endpoint.Endpoint) error { return wire.DecodeMembers(b, &m) })
	if err != nil {
		if r.path == wire.PathMemberPromote {
			return nil, unsupported(err, "MemberPromote", "3.4")
		}
		return nil, err
	}
	return &m, nil
}

func members(list []wire.Member) []Member {
	out := make([]Member, len(list))
	for i, m := range list {
		out[i] = Member(m)
	}
	return out
}
