//go:build js

package etcdgw

import (
	"fmt"
	"io"
	"net/http"
)

// wsSupported reports whether this build can open WebSockets: under js,
// watches over http use requests of their own.
const wsSupported = false

func (m *watchMux) dialWebSocket(*http.Request) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%s: no WebSocket in this build: %w", m.ep.URL, errNoCreated)
}
