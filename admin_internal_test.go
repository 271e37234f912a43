package etcdgw

import (
	"errors"
	"testing"

	"github.com/etcdgw/etcdgw/internal/wire"
)

func TestRouteMissing(t *testing.T) {
	parse := func(status int, body string) *Error {
		return newError(wire.ParseErrorBody(status, []byte(body)), "http://m")
	}
	tests := []struct {
		name string
		e    *Error
		want bool
	}{
		{"3.4, 3.5 unknown path", parse(404, "404 page not found\n"), true},
		{"3.6+ unknown path", parse(404, `{"code":5,"message":"Not Found"}`), true},
		{"3.4 wrong method", parse(405, "Method Not Allowed\n"), true},
		{"3.6+ wrong method", parse(501, `{"code":12,"message":"Method Not Allowed"}`), true},
		{"member not found", parse(404, `{"code":5,"message":"etcdserver: member not found"}`), false},
		{"user not found 3.5", parse(400, `{"error":"etcdserver: user name not found","code":9,"message":"etcdserver: user name not found"}`), false},
		{"proxy 502", parse(502, "Bad Gateway"), false},
	}
	for _, tt := range tests {
		if got := routeMissing(tt.e); got != tt.want {
			t.Errorf("%s: routeMissing = %v, want %v", tt.name, got, tt.want)
		}
		err := unsupported(tt.e, "X", "3.5")
		if got := errors.Is(err, errors.ErrUnsupported); got != tt.want {
			t.Errorf("%s: errors.Is(unsupported(e), ErrUnsupported) = %v, want %v", tt.name, got, tt.want)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: the *Error is lost: %v", tt.name, err)
		}
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		v            string
		major, minor int
		want         bool
	}{
		{"3.3.27", 3, 4, true},
		{"3.4.0", 3, 4, false},
		{"3.10.1", 3, 5, false},
		{"3.4.45", 3, 5, true},
		{"2.3.8", 3, 4, true},
		{"4.0.0", 3, 5, false},
		{"garbage", 3, 4, false},
	}
	for _, tt := range tests {
		if got := versionLess(tt.v, tt.major, tt.minor); got != tt.want {
			t.Errorf("versionLess(%q, %d, %d) = %v, want %v", tt.v, tt.major, tt.minor, got, tt.want)
		}
	}
}
