package etcdgw

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the client options.
const (
	DefaultEndpoint         = "http://127.0.0.1:2379"
	DefaultTimeout          = 5 * time.Second
	DefaultFailTimeout      = 10 * time.Second
	DefaultMaxResponseBytes = 512 << 20
	DefaultDialTimeout      = 2 * time.Second
	// DefaultStreamKeepaliveInterval and DefaultStreamKeepaliveTimeout are
	// WithStreamKeepalive's defaults: a frozen stream moves on in about 10s.
	DefaultStreamKeepaliveInterval = 5 * time.Second
	DefaultStreamKeepaliveTimeout  = 5 * time.Second
)

// config is what the options build; New validates it as a whole.
type config struct {
	endpoints        []string
	timeout          time.Duration
	ttl              int64
	keyPrefix        string
	apiPrefix        string
	serializer       Serializer
	headers          http.Header
	username         string
	password         string
	auth             bool
	unixSocket       string
	tls              tlsOptions
	failTimeout      time.Duration
	maxFails         int
	maxResponseBytes int
	requireLeader    bool
	watchBuffer      int
	dialTimeout      time.Duration
	attemptTimeout   time.Duration // 0: derived from the call's deadline
	noMultiplex      bool          // WithWatchMultiplexing(false)
	webSocket34      bool          // WithWebSocketOnEtcd34
	streamIdle       time.Duration // a stream quiet this long is checked
	streamTimeout    time.Duration // and ended if the check gets no answer in this
	readCoalescing   bool

	wrap     func(http.RoundTripper) http.RoundTripper // WithTransport
	proxy    func(*http.Request) (*url.URL, error)     // WithProxy; http.ProxyFromEnvironment by default
	logger   *slog.Logger                              // WithLogger; nil: discard
	observer *Observer                                 // WithObserver; nil: none
}

// Option configures a Client. Options are applied by New in order; a bad value
// makes New fail.
type Option func(*config) error

// WithEndpoints sets the etcd client URLs, "http://host[:port][/base]" or
// "https://host[:port][/base]". A URL without a port uses its scheme's
// default, 80 or 443, as net/http does (write etcd's 2379 explicitly); IPv6
// as "[::1]:2379". A base path, such as "https://gw.example.com/etcd", is for
// a gateway mounted under a path behind a reverse proxy: every call, /version
// and /health included, goes under it (the API prefix, such as /v3, is not
// part of it: see WithAPIPrefix). Several URLs make a cluster: calls go
// round-robin over the healthy ones, starting at a random one. The default is
// "http://127.0.0.1:2379". [lua-resty-etcd: http_host]
func WithEndpoints(urls ...string) Option {
	return func(c *config) error {
		if len(urls) == 0 {
			return invalidOption("WithEndpoints: no endpoint")
		}
		c.endpoints = append([]string(nil), urls...)
		return nil
	}
}

// WithTimeout sets the deadline of a unary call whose ctx has none; 0 means
// no deadline. It never applies to a watch or a KeepAlive loop, which run until
// their ctx ends. The default is 5s. [lua-resty-etcd: timeout]
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalidOption("WithTimeout: negative timeout %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithTTL makes Set, SetNX and SetX without WithLease grant a lease of this
// many seconds and attach the key to it, so that the key expires unless it is
// written again. It costs one extra request per write. 0 turns it off, the
// default. [lua-resty-etcd: ttl, which it never implemented]
func WithTTL(seconds int64) Option {
	return func(c *config) error {
		if seconds < 0 {
			return invalidOption("WithTTL: negative TTL %d", seconds)
		}
		c.ttl = seconds
		return nil
	}
}

// WithKeyPrefix prepends prefix to every key and range end the client sends,
// in every call, txn and watch, and strips it from every key it returns, so
// that a program sees a namespace of its own. [lua-resty-etcd: key_prefix]
func WithKeyPrefix(prefix string) Option {
	return func(c *config) error {
		c.keyPrefix = prefix
		return nil
	}
}

// WithAPIPrefix sets the gateway's path prefix: "/v3" (etcd 3.4 and later),
// "/v3beta" (3.3) or "/v3alpha" (3.2). Empty, the default, detects it once from
// GET /version on first use. [lua-resty-etcd: api_prefix]
func WithAPIPrefix(prefix string) Option {
	return func(c *config) error {
		switch prefix {
		case "", "/v3", "/v3beta", "/v3alpha":
			c.apiPrefix = prefix
			return nil
		}
		return invalidOption("WithAPIPrefix: %q is none of /v3, /v3beta, /v3alpha", prefix)
	}
}

// WithSerializer sets how values are encoded: JSON, the default, or Raw.
// [lua-resty-etcd: serializer]
func WithSerializer(s Serializer) Option {
	return func(c *config) error {
		if s == nil {
			return invalidOption("WithSerializer: nil serializer")
		}
		c.serializer = s
		return nil
	}
}

// managedHeaders are set by the client; WithHeader refuses them.
var managedHeaders = map[string]bool{
	"Authorization": true, "Content-Length": true, "Content-Type": true,
	"Transfer-Encoding": true, "Connection": true, "Upgrade": true, "Host": true,
	"Te": true, "Trailer": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Grpc-Metadata-Token": true,
}

// WithHeader adds a header to every request, watches included. The headers the
// client manages (Authorization, Content-Length, Content-Type,
// Transfer-Encoding, Connection, Upgrade, Host and the other hop-by-hop ones)
// are refused: use WithAuth for credentials. Headers named
// "Grpc-Metadata-<name>" reach etcd as gRPC metadata. [lua-resty-etcd: extra_headers]
func WithHeader(key, value string) Option {
	return func(c *config) error {
		k := http.CanonicalHeaderKey(strings.TrimSpace(key))
		if !validHeaderName(k) {
			return invalidOption("WithHeader: invalid header name %q", key)
		}
		if strings.ContainsAny(value, "\r\n") {
			return invalidOption("WithHeader: header %s: value has a line break", k)
		}
		if !validHeaderValue(value) {
			return invalidOption("WithHeader: header %s: value has a control character", k)
		}
		if managedHeaders[k] {
			return invalidOption("WithHeader: %s is managed by the client", k)
		}
		if c.headers == nil {
			c.headers = make(http.Header)
		}
		c.headers.Add(k, value)
		return nil
	}
}

// validHeaderName reports whether name is an RFC 9110 token, as net/http
// requires of a header name it sends.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http will send value: no control
// characters but horizontal tab.
func validHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// WithAuth makes the client authenticate as username with password: one token
// fetch shared by all concurrent calls, the token sent with every request, and
// a new token fetched once, the call retried once, when etcd says the token is
// invalid or stale. [lua-resty-etcd: user, password]
func WithAuth(username, password string) Option {
	return func(c *config) error {
		if username == "" {
			return invalidOption("WithAuth: empty user name")
		}
		c.username, c.password, c.auth = username, password, true
		return nil
	}
}

// WithUnixSocket makes the client dial this unix socket for every endpoint,
// keeping the endpoint's host in the Host header and its scheme: a proxy or
// sidecar on the socket forwards to etcd. [lua-resty-etcd: unix_socket_proxy]
func WithUnixSocket(path string) Option {
	return func(c *config) error {
		if path == "" {
			return invalidOption("WithUnixSocket: empty path")
		}
		c.unixSocket = path
		return nil
	}
}

// WithHealthCheck sets the passive health check of the endpoints: after
// maxFails consecutive failures (transport errors and 5xx answers) an endpoint
// is skipped for failTimeout, then comes back once a probe of GET /health
// answers. A failTimeout of 0 turns the check off. The default is 10s and 1.
// [lua-resty-etcd: health_check fail_timeout, max_fails]
func WithHealthCheck(failTimeout time.Duration, maxFails int) Option {
	return func(c *config) error {
		if failTimeout < 0 {
			return invalidOption("WithHealthCheck: negative fail timeout %v", failTimeout)
		}
		if maxFails < 1 {
			return invalidOption("WithHealthCheck: maxFails %d is below 1", maxFails)
		}
		c.failTimeout, c.maxFails = failTimeout, maxFails
		return nil
	}
}

// WithMaxResponseBytes bounds the size of one answer, or of one message of a
// stream (a watch's fragments joined included); a larger one fails with
// ErrResponseTooLarge, not an out-of-memory crash. It is the client's own
// limit: such a call is not retried elsewhere and counts against no member.
// The default is 512 MiB. A watch whose single revision batch exceeds it can
// use WithFragment only if each fragment fits.
func WithMaxResponseBytes(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return invalidOption("WithMaxResponseBytes: %d is not positive", n)
		}
		c.maxResponseBytes = n
		return nil
	}
}

// WithDialTimeout bounds one connect: TCP, unix socket, and the TLS
// handshake. A member that does not accept within it costs that much, then
// the call tries the next one. The default is 2s.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalidOption("WithDialTimeout: %v is not positive", d)
		}
		c.dialTimeout = d
		return nil
	}
}

// WithAttemptTimeout bounds one attempt of a unary call or of a lease
// renewal, from sending the request until the answer's headers arrive. A
// member that accepts the connection and never answers costs one attempt
// timeout, is marked unhealthy, and a read or renewal moves on to the next
// member; a write that timed out after it was sent fails with
// ErrOutcomeUnknown. 0, the default, derives it from the call's remaining
// deadline so that at least two members get a try: half of what is left while
// another member is still untried (the whole of it for the last one, and
// when less than 200ms is left), or 5s for a call with no deadline at all.
// Watches are guarded by WithStreamKeepalive instead.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalidOption("WithAttemptTimeout: negative timeout %v", d)
		}
		c.attemptTimeout = d
		return nil
	}
}

// WithWatchMultiplexing sets whether the watches to one member share one
// duplex stream, the default, or each watch is a request of its own. The
// shared stream is HTTP/2 over https, and a WebSocket over http when the
// member runs etcd 3.5 or later (see WithWebSocketOnEtcd34) and, with auth,
// takes Bearer tokens (3.5.32, 3.6.13, 3.7.0 and later); other members get a
// request per watch. Turn it off behind a proxy that buffers request bodies,
// where a shared stream never starts; the client also falls back by itself
// when a shared stream does not confirm a watch in time or a WebSocket
// upgrade is refused. It also sets whether the renewals of KeepAlive loops
// share one duplex HTTP/2 stream per https member; they fall back by
// themselves to a request per renewal when that stream does not answer in
// time.
func WithWatchMultiplexing(on bool) Option {
	return func(c *config) error {
		c.noMultiplex = !on
		return nil
	}
}

// WithWebSocketOnEtcd34 lets watches over http share a WebSocket on etcd 3.4
// members too. Turn it on only when they run with --logger=zap: a WebSocket
// request crashes etcd 3.4.25 to 3.4.45 run with the default logger
// (capnslog). Without it, watches to a 3.4 member over http are requests of
// their own.
func WithWebSocketOnEtcd34(on bool) Option {
	return func(c *config) error {
		c.webSocket34 = on
		return nil
	}
}

// WithStreamKeepalive sets how a watch stream that has gone quiet is checked:
// after interval without a byte from the member, the client pings the HTTP/2
// connection, or over HTTP/1.1 and WebSocket probes the member's /health; no
// answer within timeout ends the stream and the watch resumes through another
// member, losing nothing. This is what notices a partition that drops packets
// or a paused member, which no reset announces. It is also what moves a
// WebSocket watch off a member that lost its leader: the gateway's WebSocket
// proxy does not pass the require-leader header to etcd, and /health answers
// false without a leader. The defaults are 5s and 5s.
func WithStreamKeepalive(interval, timeout time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 || timeout <= 0 {
			return invalidOption("WithStreamKeepalive(%v, %v): both must be positive", interval, timeout)
		}
		c.streamIdle, c.streamTimeout = interval, timeout
		return nil
	}
}

// WithReadCoalescing sets whether concurrent plain reads may share one
// request, which they do by default: while two Gets per endpoint are in
// flight, the next ones queue, and go together as one read-only Txn of their
// ranges as soon as one of those ends.
// Each caller gets its own answer, or its own error: a Txn that fails is
// retried read by read. Only plain reads are coalesced: at the latest
// revision, linearizable, unsorted, without revision filters or
// WithCallRequireLeader. They stay linearizable: each was invoked before the
// Txn was sent and returns after it was answered. It trades a little latency
// of the queued reads for far fewer requests under load, where the gateway's
// cost per request is the limit (BenchmarkGet, 64 callers: 6.5 to 8 times
// the reads a second), and it costs nothing to a lone caller, whose reads
// never queue.
func WithReadCoalescing(on bool) Option {
	return func(c *config) error {
		c.readCoalescing = on
		return nil
	}
}

// WithRequireLeader makes every call fail fast with ErrNoLeader when the member
// it reaches has no leader, instead of waiting for one (it sends
// Grpc-Metadata-Hasleader: true). Watches always require a leader, so that a
// watch on a member cut off from the cluster moves to another.
func WithRequireLeader() Option {
	return func(c *config) error {
		c.requireLeader = true
		return nil
	}
}

// WithTransport wraps the client's own transport with wrap, for
// instrumentation such as otelhttp.NewTransport or a promhttp round tripper.
// Every request goes through the wrapper, watches and their streams
// included; the client's dialer, TLS, HTTP/2, proxy and connection pool are
// kept underneath. Each request carries a header map of its own, which the
// wrapper may change. A wrapper must pass on the body of a 101 Switching
// Protocols answer as it is (writable, as otelhttp does): a WebSocket runs on
// it, and otherwise watches and renewals over http use requests of their
// own. wrap is called once, by New, and must not return nil.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *config) error {
		if wrap == nil {
			return invalidOption("WithTransport: nil wrapper")
		}
		c.wrap = wrap
		return nil
	}
}

// WithProxy sets the HTTP proxy of the client's requests, as
// http.Transport.Proxy does: an http proxy forwards plain requests, and https
// endpoints are tunnelled with CONNECT. The default is
// http.ProxyFromEnvironment (HTTPS_PROXY, HTTP_PROXY and NO_PROXY, which never
// proxies loopback addresses); nil turns proxying off. With WithUnixSocket no
// proxy is used.
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return func(c *config) error {
		if proxy == nil {
			proxy = noProxy
		}
		c.proxy = proxy
		return nil
	}
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// WithLogger makes the client log what a program's operator wants to know
// and a call's error does not say: endpoints marked unhealthy and back,
// watches reconnecting (with the revision they resume from) and compacted,
// keepalive failures and leases lost, token refreshes, and the API prefix
// detected. Records are structured, written with LogAttrs and the call's
// context; they never hold a token, a password or a value. The default
// discards them; nil does too.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithObserver sets hooks for metrics and tracing: see Observer. The
// default, and an Observer with every field nil, cost nothing.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		c.observer = &o
		return nil
	}
}

// parseEndpoint checks an endpoint URL and returns it normalized as
// scheme://host:port[/base], with its Host header: host:port, or host alone
// when the URL has no port.
func parseEndpoint(raw string) (normalized, hostport string, isTLS bool, err error) {
	shown := redactPassword(raw) // errors end up in logs
	if !strings.Contains(raw, "://") {
		return "", "", false, invalidOption("endpoint %q: no scheme: want http://host[:port] or https://host[:port]", shown)
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		var ue *url.Error
		if errors.As(perr, &ue) {
			perr = ue.Err // without the URL, which may hold a password
		}
		return "", "", false, invalidOption("endpoint %q: %v", shown, perr)
	}
	switch u.Scheme {
	case "http":
	case "https":
		isTLS = true
	default:
		return "", "", false, invalidOption("endpoint %q: scheme must be http or https", shown)
	}
	if u.Host == "" {
		return "", "", false, invalidOption("endpoint %q: no host", shown)
	}
	var extra string
	switch {
	case u.User != nil:
		extra = "user info (use WithAuth)"
	case u.RawQuery != "":
		extra = "a query"
	case u.Fragment != "":
		extra = "a fragment"
	case u.Opaque != "":
		extra = "an opaque part"
	}
	if extra != "" {
		return "", "", false, invalidOption("endpoint %q: has %s: only scheme://host[:port][/base] is allowed", shown, extra)
	}
	base, err := basePath(u.EscapedPath())
	if err != nil {
		return "", "", false, invalidOption("endpoint %q: %v", shown, err)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", "", false, invalidOption("endpoint %q: no host", shown)
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", "", false, invalidOption("endpoint %q: empty port", shown)
	}
	if port == "" {
		port = "80" // as net/http does
		if isTLS {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", false, invalidOption("endpoint %q: port %s is not in 1-65535", shown, port)
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", "", false, invalidOption("endpoint %q: invalid IPv6 address", shown)
	}
	hostport = net.JoinHostPort(host, port)
	normalized = u.Scheme + "://" + hostport + base
	if u.Port() == "" {
		hostport = u.Host // the Host header as written, as net/http sends it
	}
	return normalized, hostport, isTLS, nil
}

// basePath checks an endpoint's escaped path and returns it without its
// trailing slashes: "" or "/base". The gateway's API prefix is refused
// there, since the client adds it.
func basePath(p string) (string, error) {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "", nil
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "", ".", "..":
			return "", fmt.Errorf("base path %q has an empty, . or .. segment", p)
		}
	}
	for _, api := range []string{"/v3", "/v3beta", "/v3alpha"} {
		if strings.HasSuffix(p, api) {
			return "", fmt.Errorf("base path %q ends with the gateway's API prefix %s: leave it out (the client adds it; use WithAPIPrefix to choose it)", p, api)
		}
	}
	return p, nil
}

// redactPassword replaces the password of a URL's user info, if any, with
// "xxxxx", as url.URL.Redacted does, for URLs that may not parse.
func redactPassword(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return raw[:i+3] + user + ":xxxxx" + rest[at:]
}

// SortTarget is the field Get and ReadDir sort by.
type SortTarget int

// Sort targets.
const (
	SortByKey SortTarget = iota
	SortByVersion
	SortByCreateRevision
	SortByModRevision
	SortByValue
)

func (t SortTarget) String() string {
	switch t {
	case SortByKey:
		return "SortByKey"
	case SortByVersion:
		return "SortByVersion"
	case SortByCreateRevision:
		return "SortByCreateRevision"
	case SortByModRevision:
		return "SortByModRevision"
	case SortByValue:
		return "SortByValue"
	}
	return fmt.Sprintf("SortTarget(%d)", int(t))
}

// SortOrder is the order Get and ReadDir sort in.
type SortOrder int

// Sort orders.
const (
	SortNone SortOrder = iota
	SortAscend
	SortDescend
)

func (o SortOrder) String() string {
	switch o {
	case SortNone:
		return "SortNone"
	case SortAscend:
		return "SortAscend"
	case SortDescend:
		return "SortDescend"
	}
	return fmt.Sprintf("SortOrder(%d)", int(o))
}

// opt is one per-operation option, as a bit: a call refuses the options that do
// not apply to it.
type opt uint32

const (
	optRev opt = 1 << iota
	optPrefix
	optRange
	optFromKey
	optLimit
	optSort
	optKeysOnly
	optCountOnly
	optSerializable
	optLease
	optPrevKV
	optIgnoreValue
	optIgnoreLease
	optProgressNotify
	optFilterPut
	optFilterDelete
	optFragment
	optWatchID
	optMinModRev
	optMaxModRev
	optMinCreateRev
	optMaxCreateRev
	optRequireLeader
)

var optNames = [...]string{
	"WithRev", "WithPrefix", "WithRange", "WithFromKey", "WithLimit", "WithSort", "WithKeysOnly",
	"WithCountOnly", "WithSerializable", "WithLease", "WithPrevKV", "WithIgnoreValue", "WithIgnoreLease",
	"WithProgressNotify", "WithFilterPut", "WithFilterDelete", "WithFragment", "WithWatchID",
	"WithMinModRev", "WithMaxModRev", "WithMinCreateRev", "WithMaxCreateRev", "WithRequireLeader",
}

// The options each kind of call accepts.
const (
	rangeOpts = optRev | optPrefix | optRange | optFromKey | optLimit | optSort | optKeysOnly | optCountOnly |
		optSerializable | optMinModRev | optMaxModRev | optMinCreateRev | optMaxCreateRev | optRequireLeader
	readDirOpts = rangeOpts &^ (optPrefix | optRange | optFromKey)
	putOpts     = optLease | optPrevKV | optIgnoreValue | optIgnoreLease | optRequireLeader
	deleteOpts  = optPrefix | optRange | optFromKey | optPrevKV | optRequireLeader
	rmDirOpts   = optPrevKV | optRequireLeader
	watchOpts   = optRev | optPrefix | optRange | optFromKey | optPrevKV | optProgressNotify | optFilterPut |
		optFilterDelete | optFragment | optWatchID
	watchDirOpts = watchOpts &^ (optPrefix | optRange | optFromKey)
	grantOpts    = optLease | optRequireLeader
	setNXOpts    = optLease | optRequireLeader
	setXOpts     = putOpts
	txnOpts      = optRequireLeader
)

// OpOption configures one operation: a call such as Get or Watch, or an Op of
// a transaction. An option that does not apply to the operation, or a bad
// value, makes the call fail with ErrInvalidOption before anything is sent.
type OpOption func(*Op)

func (op *Op) setOpt(o opt) {
	op.opts |= o
}

func (op *Op) bad(format string, args ...any) {
	if op.err == nil {
		op.err = invalidOption(format, args...)
	}
}

// WithRev reads at revision rev (Get, ReadDir, OpGet), or starts a watch at
// rev, inclusive. Revisions below 1 are refused.
func WithRev(rev int64) OpOption {
	return func(op *Op) {
		op.setOpt(optRev)
		if rev <= 0 {
			op.bad("WithRev(%d): revision must be positive", rev)
		}
		op.rev = rev
	}
}

// WithPrefix makes the key a prefix: every key that starts with it. The empty
// key with WithPrefix means every key.
func WithPrefix() OpOption { return func(op *Op) { op.setOpt(optPrefix) } }

// WithRange makes the operation cover [key, end). end "\x00" means every key
// from key on, as WithFromKey.
func WithRange(end string) OpOption {
	return func(op *Op) {
		op.setOpt(optRange)
		if end == "" {
			op.bad("WithRange: empty range end")
		}
		op.end = end
	}
}

// WithFromKey makes the operation cover every key from key on.
func WithFromKey() OpOption { return func(op *Op) { op.setOpt(optFromKey) } }

// WithLimit caps the number of keys Get or ReadDir returns; 0 is no limit.
func WithLimit(n int64) OpOption {
	return func(op *Op) {
		op.setOpt(optLimit)
		if n < 0 {
			op.bad("WithLimit(%d): negative limit", n)
		}
		op.limit = n
	}
}

// WithSort sorts the keys Get or ReadDir returns.
func WithSort(target SortTarget, order SortOrder) OpOption {
	return func(op *Op) {
		op.setOpt(optSort)
		if target < SortByKey || target > SortByValue {
			op.bad("WithSort: unknown target %v", target)
		}
		if order < SortNone || order > SortDescend {
			op.bad("WithSort: unknown order %v", order)
		}
		op.sortTarget, op.sortOrder = target, order
	}
}

// WithKeysOnly returns keys without values.
func WithKeysOnly() OpOption { return func(op *Op) { op.setOpt(optKeysOnly) } }

// WithCountOnly returns only the number of keys, in GetResponse.Count.
func WithCountOnly() OpOption { return func(op *Op) { op.setOpt(optCountOnly) } }

// WithSerializable reads from the member answering, without a round of
// consensus: faster, and possibly stale.
func WithSerializable() OpOption { return func(op *Op) { op.setOpt(optSerializable) } }

// WithLease attaches the key to lease id (Set, SetNX, SetX, OpPut), or asks
// Grant for this lease ID.
func WithLease(id LeaseID) OpOption {
	return func(op *Op) {
		op.setOpt(optLease)
		if id <= 0 {
			op.bad("WithLease(%d): lease ID must be positive", id)
		}
		op.lease = id
	}
}

// WithPrevKV returns the previous key-value pair: in PutResponse.PrevKv, in
// DeleteResponse.PrevKvs, or in each watch event's PrevKv.
func WithPrevKV() OpOption { return func(op *Op) { op.setOpt(optPrevKV) } }

// WithIgnoreValue updates the key keeping its current value (the value given
// must be nil); etcd refuses it for a key that does not exist.
func WithIgnoreValue() OpOption { return func(op *Op) { op.setOpt(optIgnoreValue) } }

// WithIgnoreLease updates the key keeping its current lease; etcd refuses it
// for a key that does not exist.
func WithIgnoreLease() OpOption { return func(op *Op) { op.setOpt(optIgnoreLease) } }

// WithProgressNotify makes etcd send a watch periodic responses with no events
// (WatchResponse.IsProgressNotify), which also move the watch's resume point.
func WithProgressNotify() OpOption { return func(op *Op) { op.setOpt(optProgressNotify) } }

// WithFilterPut makes a watch skip put events.
func WithFilterPut() OpOption { return func(op *Op) { op.setOpt(optFilterPut) } }

// WithFilterDelete makes a watch skip delete events.
func WithFilterDelete() OpOption { return func(op *Op) { op.setOpt(optFilterDelete) } }

// WithFragment lets etcd split a watch response larger than its request size
// limit into fragments; the client joins them again into one WatchResponse.
func WithFragment() OpOption { return func(op *Op) { op.setOpt(optFragment) } }

// WithWatchID asks etcd for this watch ID; 0 lets etcd choose.
func WithWatchID(id int64) OpOption {
	return func(op *Op) {
		op.setOpt(optWatchID)
		if id < 0 {
			op.bad("WithWatchID(%d): negative ID", id)
		}
		op.watchID = id
	}
}

// WithMinModRev keeps only keys modified at or after rev.
func WithMinModRev(rev int64) OpOption { return revFilter(optMinModRev, rev) }

// WithMaxModRev keeps only keys modified at or before rev.
func WithMaxModRev(rev int64) OpOption { return revFilter(optMaxModRev, rev) }

// WithMinCreateRev keeps only keys created at or after rev.
func WithMinCreateRev(rev int64) OpOption { return revFilter(optMinCreateRev, rev) }

// WithMaxCreateRev keeps only keys created at or before rev.
func WithMaxCreateRev(rev int64) OpOption { return revFilter(optMaxCreateRev, rev) }

func revFilter(o opt, rev int64) OpOption {
	return func(op *Op) {
		op.setOpt(o)
		if rev < 0 {
			op.bad("%s(%d): negative revision", o, rev)
		}
		switch o {
		case optMinModRev:
			op.minModRev = rev
		case optMaxModRev:
			op.maxModRev = rev
		case optMinCreateRev:
			op.minCreateRev = rev
		case optMaxCreateRev:
			op.maxCreateRev = rev
		}
	}
}

// WithCallRequireLeader makes this call fail fast with ErrNoLeader when the
// member it reaches has no leader; WithRequireLeader does it for every call.
func WithCallRequireLeader() OpOption { return func(op *Op) { op.setOpt(optRequireLeader) } }

func (o opt) String() string {
	for i := 0; i < len(optNames); i++ {
		if o&(1<<i) != 0 {
			return optNames[i]
		}
	}
	return "option"
}

// applyOpts applies opts to op and checks that they apply to the operation,
// named what, which accepts allowed.
func (op *Op) applyOpts(what string, allowed opt, opts []OpOption) error {
	for _, o := range opts {
		if o == nil {
			return invalidOption("%s: nil option", what)
		}
		o(op)
	}
	if op.err != nil {
		return fmt.Errorf("%s: %w", what, op.err)
	}
	if extra := op.opts &^ allowed; extra != 0 {
		return invalidOption("%s does not apply to %s", extra, what)
	}
	if n := countBits(op.opts & (optPrefix | optRange | optFromKey)); n > 1 {
		return invalidOption("%s: WithPrefix, WithRange and WithFromKey exclude each other", what)
	}
	if op.opts&optLease != 0 && op.opts&optIgnoreLease != 0 {
		return invalidOption("%s: WithLease and WithIgnoreLease exclude each other", what)
	}
	return nil
}

func countBits(o opt) int {
	n := 0
	for ; o != 0; o &= o - 1 {
		n++
	}
	return n
}
