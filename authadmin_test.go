package etcdgw_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// TestAuthAdministration sets up users, roles and permissions through the
// gateway, turns auth on, and checks what each user may do.
func TestAuthAdministration(t *testing.T) {
	srv := newServer(t, etcdtestConfig{})
	ctx := testCtx(t)
	c := newClientOf(t, srv.Endpoint())
	app, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithKeyPrefix("/app/"))
	require.NoError(t, err)
	defer app.Close()

	st, err := c.AuthStatus(ctx)
	authStatus := !errors.Is(err, errors.ErrUnsupported)
	if authStatus {
		require.NoError(t, err)
		assert.False(t, st.Enabled)
	} else {
		t.Logf("AuthStatus on etcd %s: %v", etcdtest.Version(), err)
		assert.False(t, etcdtest.VersionAtLeast(3, 5), "AuthStatus unsupported on etcd 3.5+")
	}

	require.NoError(t, c.UserAdd(ctx, "root", "rootpw"))
	require.NoError(t, c.RoleAdd(ctx, "root"))
	require.NoError(t, c.UserGrantRole(ctx, "root", "root"))

	// Permissions through a client with a key prefix are on its keys.
	require.NoError(t, c.RoleAdd(ctx, "reader"))
	require.NoError(t, app.RoleGrantPermission(ctx, "reader", etcdgw.Permission{Type: etcdgw.PermRead, Key: "", RangeEnd: "\x00"}))
	require.NoError(t, app.RoleGrantPermission(ctx, "reader", etcdgw.Permission{Type: etcdgw.PermReadWrite, Key: "rw/", RangeEnd: "rw0"}))
	require.NoError(t, c.RoleGrantPermission(ctx, "reader", etcdgw.Permission{Type: etcdgw.PermWrite, Key: "/other"}))
	perms, err := c.RoleGet(ctx, "reader")
	require.NoError(t, err)
	assert.ElementsMatch(t, []etcdgw.Permission{
		{Type: etcdgw.PermRead, Key: "/app/", RangeEnd: "/app0"},
		{Type: etcdgw.PermReadWrite, Key: "/app/rw/", RangeEnd: "/app/rw0"},
		{Type: etcdgw.PermWrite, Key: "/other"},
	}, perms)
	perms, err = app.RoleGet(ctx, "reader")
	require.NoError(t, err)
	assert.ElementsMatch(t, []etcdgw.Permission{
		{Type: etcdgw.PermRead, Key: "", RangeEnd: "\x00"},
		{Type: etcdgw.PermReadWrite, Key: "rw/", RangeEnd: "rw0"},
	}, perms, "RoleGet leaves out permissions outside the key prefix")

	const secret = "s3cr3t-pw"
	require.NoError(t, c.UserAdd(ctx, "alice", secret))
	require.NoError(t, c.UserGrantRole(ctx, "alice", "reader"))
	// A user without a password, for client-certificate auth.
	require.NoError(t, c.UserAdd(ctx, "cert-user", ""))
	roles, err := c.UserGet(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, []string{"reader"}, roles)
	users, err := c.UserList(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"root", "alice", "cert-user"}, users)
	rl, err := c.RoleList(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"root", "reader"}, rl)

	// Typed errors, and never a password in them.
	err = c.UserAdd(ctx, "alice", secret)
	assert.ErrorIs(t, err, etcdgw.ErrUserExists)
	assert.NotContains(t, err.Error(), secret)
	err = c.UserChangePassword(ctx, "nobody", secret)
	assert.ErrorIs(t, err, etcdgw.ErrUserNotFound)
	assert.NotContains(t, err.Error(), secret)
	assert.ErrorIs(t, c.RoleAdd(ctx, "reader"), etcdgw.ErrRoleExists)
	_, err = c.UserGet(ctx, "nobody")
	assert.ErrorIs(t, err, etcdgw.ErrUserNotFound)
	_, err = c.RoleGet(ctx, "nobody")
	assert.ErrorIs(t, err, etcdgw.ErrRoleNotFound)
	assert.ErrorIs(t, c.UserGrantRole(ctx, "alice", "nobody"), etcdgw.ErrRoleNotFound)
	assert.ErrorIs(t, c.UserDelete(ctx, "nobody"), etcdgw.ErrUserNotFound)
	assert.ErrorIs(t, c.RoleDelete(ctx, "nobody"), etcdgw.ErrRoleNotFound)
	assert.ErrorIs(t, c.RoleGrantPermission(ctx, "reader", etcdgw.Permission{Type: 7, Key: "k"}), etcdgw.ErrInvalidArgument)
	assert.ErrorIs(t, c.RoleGrantPermission(ctx, "reader", etcdgw.Permission{}), etcdgw.ErrInvalidArgument)

	require.NoError(t, c.AuthEnable(ctx))
	root, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("root", "rootpw"))
	require.NoError(t, err)
	defer root.Close()
	alice, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("alice", secret), etcdgw.WithKeyPrefix("/app/"))
	require.NoError(t, err)
	defer alice.Close()
	if authStatus {
		st, err = root.AuthStatus(ctx)
		require.NoError(t, err)
		assert.True(t, st.Enabled)
		assert.Positive(t, st.AuthRevision)
	}

	_, err = root.Set(ctx, "/app/x", "1")
	require.NoError(t, err)
	got, err := alice.Get(ctx, "x")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	_, err = alice.Set(ctx, "x", "2")
	assert.ErrorIs(t, err, etcdgw.ErrPermissionDenied, "a read-only user's write")
	_, err = alice.Set(ctx, "rw/y", "2")
	assert.NoError(t, err)
	// The user without a password cannot authenticate with one.
	nopw, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("cert-user", "anything"))
	require.NoError(t, err)
	defer nopw.Close()
	_, err = nopw.Get(ctx, "x")
	assert.ErrorIs(t, err, etcdgw.ErrAuthFailed)

	// A new password; the old one no longer works.
	require.NoError(t, root.UserChangePassword(ctx, "alice", "new-pw"))
	alice2, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("alice", "new-pw"), etcdgw.WithKeyPrefix("/app/"))
	require.NoError(t, err)
	defer alice2.Close()
	_, err = alice2.Get(ctx, "x")
	assert.NoError(t, err)
	old, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("alice", secret))
	require.NoError(t, err)
	defer old.Close()
	_, err = old.Get(ctx, "/app/x")
	assert.ErrorIs(t, err, etcdgw.ErrAuthFailed)

	// Revoking.
	rootApp, err := etcdgw.New(etcdgw.WithEndpoints(srv.Endpoint()), etcdgw.WithAuth("root", "rootpw"), etcdgw.WithKeyPrefix("/app/"))
	require.NoError(t, err)
	defer rootApp.Close()
	require.NoError(t, rootApp.RoleRevokePermission(ctx, "reader", "rw/", "rw0"))
	_, err = alice2.Set(ctx, "rw/y", "3")
	assert.ErrorIs(t, err, etcdgw.ErrPermissionDenied)
	require.NoError(t, root.UserRevokeRole(ctx, "alice", "reader"))
	_, err = alice2.Get(ctx, "x")
	assert.ErrorIs(t, err, etcdgw.ErrPermissionDenied)
	perms, err = root.RoleGet(ctx, "reader")
	require.NoError(t, err)
	assert.Len(t, perms, 2)

	require.NoError(t, root.AuthDisable(ctx))
	if authStatus {
		st, err = root.AuthStatus(ctx)
		require.NoError(t, err)
		assert.False(t, st.Enabled)
	}
	require.NoError(t, c.UserDelete(ctx, "alice"))
	require.NoError(t, c.RoleDelete(ctx, "reader"))
	users, err = c.UserList(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"root", "cert-user"}, users)
	for _, u := range users {
		assert.False(t, strings.Contains(u, "alice"))
	}
}
