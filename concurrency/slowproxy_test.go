package concurrency_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowProxy is an HTTP proxy to the shared server that holds every request
// for a delay before passing it on, so that etcd receives a lease renewal
// well after the client sent it (etcd's lease then outlives the client's
// deadline by about the delay, whatever the scheduling); Cut then cuts the
// client off: requests in flight break, and new ones get no answer.
type slowProxy struct {
	srv     *httptest.Server
	cut     context.Context
	Cut     context.CancelFunc
	closing chan struct{} // closed at the end of the test: blocked requests return
}

func newSlowProxy(t *testing.T, delay time.Duration) *slowProxy {
	t.Helper()
	target, err := url.Parse(shared.Endpoint())
	require.NoError(t, err)
	tr := &http.Transport{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	rp.FlushInterval = -1 // watch streams flow through
	p := &slowProxy{closing: make(chan struct{})}
	p.cut, p.Cut = context.WithCancel(context.Background())
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.cut.Done():
		case <-r.Context().Done():
			return
		}
		if p.cut.Err() != nil {
			// No answer until the client gives up (or the test ends: an
			// unread request body keeps the server from seeing a close).
			select {
			case <-r.Context().Done():
			case <-p.closing:
			}
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(p.cut, cancel)
		defer stop()
		rp.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(func() {
		p.Cut()
		close(p.closing)
		p.srv.CloseClientConnections()
		p.srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

func (p *slowProxy) Endpoint() string { return p.srv.URL }
