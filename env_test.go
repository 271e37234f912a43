package etcdgw_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/etcdgwtest"
)

func TestWithEnvLikeEtcdctl(t *testing.T) {
	srv := etcdgwtest.NewServer(t, etcdgwtest.WithTLS(), etcdgwtest.WithAuth("env-Secret"))
	// etcdctl's form: no scheme (https because a CA is given), user:password.
	t.Setenv("ETCDCTL_ENDPOINTS", strings.TrimPrefix(srv.Endpoint(), "https://"))
	t.Setenv("ETCDCTL_CACERT", srv.CAFile())
	t.Setenv("ETCDCTL_USER", "root:env-Secret")
	c, err := etcdgw.New(etcdgw.WithEnv())
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	// Only root may list the users (AuthStatus would say more, but etcd 3.4
	// lacks it): the client is authenticated as root.
	users, err := c.UserList(ctx)
	require.NoError(t, err)
	require.Contains(t, users, "root")

	// ETCDCTL_PASSWORD with a bare user name; a later option overrides.
	t.Setenv("ETCDCTL_USER", "root")
	t.Setenv("ETCDCTL_PASSWORD", "wrong")
	c2, err := etcdgw.New(etcdgw.WithEnv(), etcdgw.WithAuth("root", "env-Secret"))
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Get(ctx, "k")
	require.NoError(t, err)
	c3, err := etcdgw.New(etcdgw.WithEnv())
	require.NoError(t, err)
	defer c3.Close()
	_, err = c3.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrAuthFailed)
}

func TestWithEnvRefusesBadValues(t *testing.T) {
	for _, tt := range []struct {
		name, env, value, want string
	}{
		{"insecure not a bool", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "yes please", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY"},
		{"cert without key", "ETCDCTL_CERT", "/no/such/cert.pem", "go together"},
		{"CA file missing", "ETCDCTL_CACERT", "/no/such/ca.pem", "ETCDCTL_CACERT"},
		{"user without name", "ETCDCTL_USER", ":pw", "no user name"},
		{"no endpoint", "ETCDCTL_ENDPOINTS", " , ", "no endpoint"},
		{"bad endpoint", "ETCDCTL_ENDPOINTS", "ftp://x:1", "scheme"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			_, err := etcdgw.New(etcdgw.WithEnv())
			require.ErrorIs(t, err, etcdgw.ErrInvalidOption)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
