//go:build js

package etcdgw

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/etcdgw/etcdgw/internal/endpoint"
)

// wsSupported reports whether this build can open WebSockets: under js,
// watches over http use requests of their own.
const wsSupported = false

func (m *watchMux) dialWebSocket(*http.Request) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%s: no WebSocket in this build: %w", m.ep.URL, errNoCreated)
}

func (c *Client) openWebSocket(_ context.Context, ep *endpoint.Endpoint, _ *http.Request, _ string, _ *activity) (io.ReadCloser, func([]byte) error, error) {
	return nil, nil, fmt.Errorf("%s: no WebSocket in this build: %w", ep.URL, errNoCreated)
}
