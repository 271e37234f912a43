package etcdgw

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// WithEnv configures the client from etcdctl's environment variables, for
// programs configured as etcdctl is:
//
//	ETCDCTL_ENDPOINTS                 comma-separated endpoints (WithEndpoints); one
//	                                  without a scheme, such as etcdctl's 127.0.0.1:2379,
//	                                  is https when a TLS variable is set, else http
//	ETCDCTL_USER                      "name" or "name:password" (WithAuth)
//	ETCDCTL_PASSWORD                  the password, when ETCDCTL_USER has none
//	ETCDCTL_CACERT                    WithCAFile
//	ETCDCTL_CERT, ETCDCTL_KEY         WithClientCertFiles (both or neither)
//	ETCDCTL_INSECURE_SKIP_TLS_VERIFY  "true": WithInsecureSkipVerify
//
// A variable that is unset or empty changes nothing; options given after
// WithEnv override it. A bad value makes New fail, naming the variable.
func WithEnv() Option {
	return func(c *config) error { return fromEnv(c, os.Getenv) }
}

// fromEnv applies etcdctl's variables, read with getenv, to c.
func fromEnv(c *config, getenv func(string) string) error {
	ca, cert, key := getenv("ETCDCTL_CACERT"), getenv("ETCDCTL_CERT"), getenv("ETCDCTL_KEY")
	var insecure bool
	if v := getenv("ETCDCTL_INSECURE_SKIP_TLS_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return invalidOption("WithEnv: ETCDCTL_INSECURE_SKIP_TLS_VERIFY=%q is not a boolean", v)
		}
		insecure = b
	}
	if v := getenv("ETCDCTL_ENDPOINTS"); v != "" {
		scheme := "http://"
		if ca != "" || cert != "" || insecure {
			scheme = "https://"
		}
		var eps []string
		for _, ep := range strings.Split(v, ",") {
			if ep = strings.TrimSpace(ep); ep == "" {
				continue
			}
			if !strings.Contains(ep, "://") {
				ep = scheme + ep
			}
			eps = append(eps, ep)
		}
		if len(eps) == 0 {
			return invalidOption("WithEnv: ETCDCTL_ENDPOINTS: no endpoint in %q", v)
		}
		c.endpoints = eps // checked by New

	}
	if user := getenv("ETCDCTL_USER"); user != "" {
		name, password, ok := strings.Cut(user, ":")
		if !ok {
			password = getenv("ETCDCTL_PASSWORD")
		}
		if name == "" {
			return invalidOption("WithEnv: ETCDCTL_USER has no user name")
		}
		if err := WithAuth(name, password)(c); err != nil {
			return fromVar("ETCDCTL_USER", err)
		}
	}
	if ca != "" {
		if err := WithCAFile(ca)(c); err != nil {
			return fromVar("ETCDCTL_CACERT", err)
		}
	}
	if (cert == "") != (key == "") {
		return invalidOption("WithEnv: ETCDCTL_CERT and ETCDCTL_KEY go together")
	}
	if cert != "" {
		if err := WithClientCertFiles(cert, key)(c); err != nil {
			return fromVar("ETCDCTL_CERT, ETCDCTL_KEY", err)
		}
	}
	if insecure {
		if err := WithInsecureSkipVerify()(c); err != nil {
			return fromVar("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", err)
		}
	}
	return nil
}

// fromVar says which variable a bad value came from.
func fromVar(name string, err error) error {
	return fmt.Errorf("%w (from %s)", err, name)
}
