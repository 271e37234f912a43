package etcdgw

import (
	"bytes"
	"context"
	"fmt"

	"github.com/etcdgw/etcdgw/internal/wire"
)

// PermissionType is what a role's permission allows on its keys.
type PermissionType int

// Permission types.
const (
	PermRead      PermissionType = wire.PermRead
	PermWrite     PermissionType = wire.PermWrite
	PermReadWrite PermissionType = wire.PermReadWrite
)

func (p PermissionType) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("PermissionType(%d)", int(p))
}

// Permission is a role's permission on a key or a range of keys [Key,
// RangeEnd). Keys are the client's keys: the client's key prefix applies, as
// in Get. RangeEnd "" is the single Key; Key with its last byte incremented
// (as WithPrefix computes it) every key that starts with Key; "\x00" every
// key from Key on (within the client's key prefix, if any).
type Permission struct {
	Type          PermissionType
	Key, RangeEnd string
}

// AuthStatusResponse tells whether authentication is on.
type AuthStatusResponse struct {
	Header       ResponseHeader
	Enabled      bool
	AuthRevision uint64 // grows with every change of users, roles and permissions
}

// authCall sends one auth administration RPC and decodes its answer into r
// (nil: the answer's content does not matter).
func (c *Client) authCall(ctx context.Context, path string, body []byte, read bool, r *wire.AuthResponse) error {
	if r == nil {
		r = new(wire.AuthResponse)
	}
	return c.unary(ctx, &rpc{path: path, body: body, idempotent: read},
		bodyOnly(func(b []byte) error { return wire.DecodeAuth(b, r) }))
}

// AuthEnable turns authentication on. The user "root" must exist and have
// the role "root" (UserAdd, RoleAdd, UserGrantRole); from then on only
// authenticated clients (WithAuth, or client certificates) are served.
func (c *Client) AuthEnable(ctx context.Context) error {
	return c.authCall(ctx, wire.PathAuthEnable, []byte("{}"), false, nil)
}

// AuthDisable turns authentication off. Only root may do it.
func (c *Client) AuthDisable(ctx context.Context) error {
	return c.authCall(ctx, wire.PathAuthDisable, []byte("{}"), false, nil)
}

// AuthStatus tells whether authentication is on. It needs etcd 3.5 or later:
// on 3.4 it fails with an error that wraps errors.ErrUnsupported.
func (c *Client) AuthStatus(ctx context.Context) (*AuthStatusResponse, error) {
	var r wire.AuthStatusResponse
	err := c.unary(ctx, &rpc{path: wire.PathAuthStatus, body: []byte("{}"), idempotent: true},
		bodyOnly(func(b []byte) error { return wire.DecodeAuthStatus(b, &r) }))
	if err != nil {
		return nil, unsupported(err, "AuthStatus", "3.5")
	}
	return &AuthStatusResponse{Header: ResponseHeader(r.Header), Enabled: r.Enabled, AuthRevision: r.AuthRevision}, nil
}

// UserAdd adds a user. An empty password makes a user without one, who can
// authenticate only with a client certificate whose CommonName is the user's
// name (etcd's no_password option). It fails with ErrUserExists when there is
// one of that name. The password never appears in errors or logs.
func (c *Client) UserAdd(ctx context.Context, name, password string) error {
	if name == "" {
		return invalidArgument("UserAdd: empty user name")
	}
	return c.authCall(ctx, wire.PathUserAdd, wire.AppendUserAdd(nil, name, password, password == ""), false, nil)
}

// UserDelete deletes a user. It fails with ErrUserNotFound when there is none.
func (c *Client) UserDelete(ctx context.Context, name string) error {
	return c.authCall(ctx, wire.PathUserDelete, wire.AppendStrings(nil, "name", name), false, nil)
}

// UserChangePassword sets a user's password. It fails with ErrUserNotFound
// when there is no such user.
func (c *Client) UserChangePassword(ctx context.Context, name, password string) error {
	if password == "" {
		return invalidArgument("UserChangePassword(%q): empty password", name)
	}
	return c.authCall(ctx, wire.PathUserChangePW, wire.AppendStrings(nil, "name", name, "password", password), false, nil)
}

// UserGrantRole grants a role to a user. It fails with ErrUserNotFound or
// ErrRoleNotFound.
func (c *Client) UserGrantRole(ctx context.Context, user, role string) error {
	return c.authCall(ctx, wire.PathUserGrantRole, wire.AppendStrings(nil, "user", user, "role", role), false, nil)
}

// UserRevokeRole revokes a role from a user. It fails with ErrUserNotFound,
// or an *Error for a role the user does not have.
func (c *Client) UserRevokeRole(ctx context.Context, user, role string) error {
	return c.authCall(ctx, wire.PathUserRevokeRole, wire.AppendStrings(nil, "name", user, "role", role), false, nil)
}

// UserGet returns the roles of a user. It fails with ErrUserNotFound when
// there is no such user.
func (c *Client) UserGet(ctx context.Context, name string) (roles []string, err error) {
	var r wire.AuthResponse
	if err := c.authCall(ctx, wire.PathUserGet, wire.AppendStrings(nil, "name", name), true, &r); err != nil {
		return nil, err
	}
	return nonNil(r.Names), nil
}

// UserList returns the names of every user.
func (c *Client) UserList(ctx context.Context) (users []string, err error) {
	var r wire.AuthResponse
	if err := c.authCall(ctx, wire.PathUserList, []byte("{}"), true, &r); err != nil {
		return nil, err
	}
	return nonNil(r.Names), nil
}

// RoleAdd adds a role with no permission. It fails with ErrRoleExists when
// there is one of that name.
func (c *Client) RoleAdd(ctx context.Context, name string) error {
	if name == "" {
		return invalidArgument("RoleAdd: empty role name")
	}
	return c.authCall(ctx, wire.PathRoleAdd, wire.AppendStrings(nil, "name", name), false, nil)
}

// RoleDelete deletes a role. It fails with ErrRoleNotFound when there is none.
func (c *Client) RoleDelete(ctx context.Context, name string) error {
	return c.authCall(ctx, wire.PathRoleDelete, wire.AppendStrings(nil, "role", name), false, nil)
}

// RoleGet returns the permissions of a role, with the client's keys: with a
// key prefix, permissions on keys outside it are left out. It fails with
// ErrRoleNotFound when there is no such role.
func (c *Client) RoleGet(ctx context.Context, name string) (perms []Permission, err error) {
	var r wire.AuthResponse
	if err := c.authCall(ctx, wire.PathRoleGet, wire.AppendStrings(nil, "role", name), true, &r); err != nil {
		return nil, err
	}
	perms = []Permission{}
	for _, p := range r.Perms {
		key, end, ok := c.clientRange(p.Key, p.RangeEnd)
		if !ok {
			continue
		}
		perms = append(perms, Permission{Type: PermissionType(p.Type), Key: key, RangeEnd: end})
	}
	return perms, nil
}

// RoleList returns the names of every role.
func (c *Client) RoleList(ctx context.Context) (roles []string, err error) {
	var r wire.AuthResponse
	if err := c.authCall(ctx, wire.PathRoleList, []byte("{}"), true, &r); err != nil {
		return nil, err
	}
	return nonNil(r.Names), nil
}

// RoleGrantPermission grants a permission to a role; its keys are the
// client's keys (the key prefix applies). It fails with ErrRoleNotFound when
// there is no such role.
func (c *Client) RoleGrantPermission(ctx context.Context, role string, p Permission) error {
	if p.Type < PermRead || p.Type > PermReadWrite {
		return invalidArgument("RoleGrantPermission(%q): unknown permission type %d", role, int(p.Type))
	}
	key, end, err := c.permRange("RoleGrantPermission", p.Key, p.RangeEnd)
	if err != nil {
		return err
	}
	return c.authCall(ctx, wire.PathRoleGrantPerm, wire.AppendRoleGrant(nil, role, int(p.Type), key, end), false, nil)
}

// RoleRevokePermission revokes a role's permission on the key and range end
// it was granted with (the client's keys, as in RoleGrantPermission). It
// fails with ErrRoleNotFound, or an *Error for a permission the role does not
// have.
func (c *Client) RoleRevokePermission(ctx context.Context, role string, key, rangeEnd string) error {
	k, end, err := c.permRange("RoleRevokePermission", key, rangeEnd)
	if err != nil {
		return err
	}
	return c.authCall(ctx, wire.PathRoleRevokePerm, wire.AppendRoleRevoke(nil, role, k, end), false, nil)
}

// permRange is the key and range end of a permission as sent: under the key
// prefix, "\x00" as the end of the prefix's range.
func (c *Client) permRange(what, key, rangeEnd string) ([]byte, []byte, error) {
	if key == "" && rangeEnd == "" && len(c.keyPrefix) == 0 {
		return nil, nil, invalidArgument("%s: empty key", what)
	}
	k := c.fullKey(key)
	if len(k) == 0 {
		k = []byte{0}
	}
	switch rangeEnd {
	case "":
		return k, nil, nil
	case "\x00":
		if len(c.keyPrefix) > 0 {
			return k, prefixEnd(c.keyPrefix), nil
		}
		return k, []byte{0}, nil
	}
	return k, c.fullKey(rangeEnd), nil
}

// clientRange maps a permission's key and range end as etcd holds them back
// to the client's keys, the inverse of permRange; ok is false for one that
// is not within the client's key prefix.
func (c *Client) clientRange(key, end []byte) (string, string, bool) {
	if len(c.keyPrefix) == 0 {
		if bytes.Equal(key, []byte{0}) && len(end) > 0 {
			key = nil
		}
		return string(key), string(end), true
	}
	k, ok := bytes.CutPrefix(key, c.keyPrefix)
	if !ok {
		return "", "", false
	}
	switch {
	case len(end) == 0:
		return string(k), "", true
	case bytes.Equal(end, prefixEnd(c.keyPrefix)):
		return string(k), "\x00", true
	}
	e, ok := bytes.CutPrefix(end, c.keyPrefix)
	if !ok {
		return "", "", false
	}
	return string(k), string(e), true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
