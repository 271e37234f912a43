//go:build !js

package etcdgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/coder/websocket"

	"github.com/etcdgw/etcdgw/internal/endpoint"
)

// Over plain http the gateway's watch is full duplex only as a WebSocket:
// etcd wraps its gateway in a proxy that writes each text message it gets
// into the request as one line, and sends each line of the answer back as one
// message. A member's watches then share one WebSocket, as they share one
// HTTP/2 stream over https.

// wsSupported reports whether this build can open WebSockets.
const wsSupported = true

// dialWebSocket opens the stream as a WebSocket on req's URL, starts its
// writer, and returns its messages as lines.
func (m *watchMux) dialWebSocket(req *http.Request) (io.ReadCloser, error) {
	lines, sink, err := m.c.openWebSocket(m.ctx, m.ep, req, m.token, m.act)
	if err != nil {
		return nil, err
	}
	ping := lines.(*wsLines).conn.Ping
	m.ping.Store(&ping)
	if !m.c.spawn(func() { m.write(sink) }) {
		lines.Close()
		return nil, ErrClosed
	}
	return lines, nil
}

// openWebSocket opens a gateway stream as a WebSocket on req's URL, and
// returns its messages as lines and the function that sends one message (a
// line or several). ctx bounds the WebSocket's life. An upgrade that
// something on the way refuses (a proxy that does not pass WebSocket) is an
// error wrapping errNoCreated, which moves the member's streams to requests
// of their own. act, when not nil, hears of the answer.
func (c *Client) openWebSocket(ctx context.Context, ep *endpoint.Endpoint, req *http.Request, token string, act *activity) (io.ReadCloser, func([]byte) error, error) {
	// The gateway's WebSocket proxy forwards only Origin and Referer: a
	// token passes as the subprotocol "Bearer, TOKEN", which it turns into
	// an Authorization header. The client's own headers stay, for proxies on
	// the way.
	hdr := req.Header.Clone()
	hdr.Del("Authorization")
	hdr.Del("Content-Type")
	var protos []string
	if token != "" {
		protos = []string{"Bearer", token}
	}
	conn, resp, err := websocket.Dial(ctx, req.URL.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: upgradeOnly{c.transport}, CheckRedirect: noRedirects},
		HTTPHeader:      hdr,
		Host:            req.Host,
		Subprotocols:    protos,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp == nil {
			return nil, nil, err
		}
		// A 502, 503 or 504 is a refusal too when the member answers its
		// probe: a load balancer that does not pass WebSocket may say so.
		if upgradeRefused(resp.StatusCode) || c.probeWithin(ctx, ep) {
			return nil, nil, fmt.Errorf("%s: the WebSocket upgrade was refused (%s): %w", ep.URL, resp.Status, errNoCreated)
		}
		return nil, nil, fmt.Errorf("%w: the WebSocket upgrade got %s", ErrUnavailable, resp.Status)
	}
	ep.SetProto(1)
	if act != nil {
		act.touch()
	}
	// Lines over the client's limit are the line reader's to refuse, one
	// watch at a time, as on an HTTP/2 stream.
	conn.SetReadLimit(-1)
	sink := func(msg []byte) error { return conn.Write(ctx, websocket.MessageText, msg) }
	return &wsLines{ctx: ctx, conn: conn}, sink, nil
}

// upgradeRefused reports an answer to a WebSocket upgrade that says it will
// not be one here, as opposed to a member or proxy in trouble, which a later
// try may pass.
func upgradeRefused(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	}
	return true
}

// upgradeOnly drops the body of an answer to an upgrade that is not one: the
// WebSocket library reads it to its end, and a gateway that took the request
// for a watch would stream it forever.
type upgradeOnly struct{ rt http.RoundTripper }

func (u upgradeOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		resp.Body = http.NoBody
		return resp, nil
	}
	if _, ok := resp.Body.(io.ReadWriteCloser); !ok {
		// A WithTransport wrapper that replaced the body of the upgrade
		// leaves nothing to write to: requests of their own, at once.
		resp.Body.Close()
		return nil, fmt.Errorf("the WebSocket upgrade's body is not writable (%T; does a WithTransport wrapper replace it?): %w", resp.Body, errNoCreated)
	}
	return resp, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// wsLines reads a WebSocket's messages as lines, each message ended by a
// newline.
type wsLines struct {
	ctx  context.Context
	conn *websocket.Conn
	msg  io.Reader // the message being read; nil between messages
	nl   bool      // a message ended: its newline is next
}

func (r *wsLines) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.nl {
			p[0] = '\n'
			r.nl = false
			return 1, nil
		}
		if r.msg == nil {
			_, rd, err := r.conn.Reader(r.ctx)
			if err != nil {
				if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
					return 0, io.EOF
				}
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return 0, fmt.Errorf("websocket: %w", err)
			}
			r.msg = rd
		}
		n, err := r.msg.Read(p)
		if errors.Is(err, io.EOF) {
			r.msg, r.nl = nil, true
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Close closes the WebSocket at once: etcd ends the watches on it.
func (r *wsLines) Close() error { return r.conn.CloseNow() }
