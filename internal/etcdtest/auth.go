package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// authTimeout bounds the whole of EnableAuth.
const authTimeout = 30 * time.Second

// User is an etcd user for [EnableAuth].
type User struct {
	Name     string
	Password string
	// ReadPrefix lists key prefixes the user may only read.
	ReadPrefix []string
	// WritePrefix lists key prefixes the user may read and write.
	WritePrefix []string
}

// EnableAuth creates users and roles through the etcd server at endpoint
// (a URL such as [Server.Endpoint]) and then turns authentication on.
// tlsCfg is needed for https endpoints and may be nil otherwise.
//
// It creates the user "root" with password rootPassword and etcd's built-in
// role "root", which may do anything. For every other user it creates a role
// named after the user, granted read on each ReadPrefix and read-write on
// each WritePrefix; an empty prefix stands for the whole key space. A user
// without prefixes gets no role and can only authenticate.
//
// Authentication settings are stored in etcd, so they survive restarts and
// reach every cluster member.
func EnableAuth(endpoint string, tlsCfg *tls.Config, rootPassword string, users ...User) error {
	if rootPassword == "" {
		return errors.New("etcdtest: enable auth: empty root password")
	}
	for _, u := range users {
		if u.Name == "" || u.Name == "root" {
			return fmt.Errorf("etcdtest: enable auth: user name %q: want a name other than root", u.Name)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcdtest: enable auth: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()

	if _, err := cli.UserAdd(ctx, "root", rootPassword); err != nil {
		return fmt.Errorf("etcdtest: enable auth: add user root: %w", err)
	}
	if _, err := cli.RoleAdd(ctx, "root"); err != nil {
		return fmt.Errorf("etcdtest: enable auth: add role root: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return fmt.Errorf("etcdtest: enable auth: grant role root: %w", err)
	}
	for _, u := range users {
		if err := addUser(ctx, cli, u); err != nil {
			return fmt.Errorf("etcdtest: enable auth: user %q: %w", u.Name, err)
		}
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("etcdtest: enable auth: %w", err)
	}
	return nil
}

func addUser(ctx context.Context, cli *clientv3.Client, u User) error {
	if _, err := cli.UserAdd(ctx, u.Name, u.Password); err != nil {
		return err
	}
	if len(u.ReadPrefix) == 0 && len(u.WritePrefix) == 0 {
		return nil
	}
	if _, err := cli.RoleAdd(ctx, u.Name); err != nil {
		return err
	}
	grants := []struct {
		prefixes []string
		perm     clientv3.PermissionType
	}{
		{u.ReadPrefix, clientv3.PermissionType(clientv3.PermRead)},
		{u.WritePrefix, clientv3.PermissionType(clientv3.PermReadWrite)},
	}
	for _, g := range grants {
		for _, prefix := range g.prefixes {
			key, end := prefixRange(prefix)
			if _, err := cli.RoleGrantPermission(ctx, u.Name, key, end, g.perm); err != nil {
				return err
			}
		}
	}
	_, err := cli.UserGrantRole(ctx, u.Name, u.Name)
	return err
}

// prefixRange returns the permission range of a key prefix. Like etcdctl,
// it spells the whole key space ["\x00", "\x00"), because etcd treats an
// empty permission key as no key at all.
func prefixRange(prefix string) (key, end string) {
	if prefix == "" {
		return "\x00", "\x00"
	}
	return prefix, clientv3.GetPrefixRangeEnd(prefix)
}
