package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// addCaptured seeds a fuzz target with every answer captured from a real etcd.
func addCaptured(f *testing.F) {
	files, err := filepath.Glob("testdata/captured/*")
	if err != nil || len(files) == 0 {
		f.Fatalf("no captured answers: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 {
				f.Add(line)
			}
		}
	}
}

// absurdAnswers are answers that no etcd sends, as something else in its place
// might: counts and lengths that must not size an allocation, numbers out of
// range.
var absurdAnswers = []string{
	`{"header":{"revision":"7"},"kvs":[{"key":"YQ=="}],"count":"9223372036854775807"}`,
	`{"header":{"revision":"7"},"kvs":[{"key":"YQ=="}],"more":true,"count":"-9223372036854775808"}`,
	`{"kvs":[],"count":"1e18"}`,
	`{"kvs":[{"key":"YQ=="},{"key":"YQ=="}],"count":-1}`,
	`{"count":"18446744073709551616"}`,
	`{"header":{"member_id":"18446744073709551615","revision":"-1"}}`,
	`{"result":{"events":[{"kv":{"key":"YQ=="}}],"watch_id":"-9223372036854775808"}}`,
	`{"ID":"9223372036854775807","TTL":"9223372036854775807","keys":["YQ==","","Yg=="]}`,
	`{"leases":[{"ID":"-1"},{},null]}`,
	`{"responses":[{"response_range":{"count":"9223372036854775807","kvs":[null]}}]}`,
	`{"error":{"grpc_code":"9223372036854775807","http_code":-1,"message":""}}`,
	`{"code":2147483648,"message":"x"}`,
}

func addAbsurd(f *testing.F) {
	for _, a := range absurdAnswers {
		f.Add([]byte(a))
	}
}

// mirror types decode the same answers with encoding/json, as the oracle.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = 0
		return nil
	}
	s := string(b)
	if len(b) > 1 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*n = jsonInt(v)
	return err
}

type jsonKV struct {
	Key            []byte  `json:"key"`
	Value          []byte  `json:"value"`
	CreateRevision jsonInt `json:"create_revision"`
	ModRevision    jsonInt `json:"mod_revision"`
	Version        jsonInt `json:"version"`
	Lease          jsonInt `json:"lease"`
}

type jsonRange struct {
	Header struct {
		Revision jsonInt `json:"revision"`
	} `json:"header"`
	Kvs   []*jsonKV `json:"kvs"`
	More  bool      `json:"more"`
	Count jsonInt   `json:"count"`
}

// FuzzDecodeRange checks that the range decoder never panics and that whatever
// it accepts, encoding/json reads the same way.
func FuzzDecodeRange(f *testing.F) {
	addCaptured(f)
	addAbsurd(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r RangeResponse
		if err := DecodeRange(data, nil, &r); err != nil {
			return
		}
		var generic any
		if json.Unmarshal(data, &generic) != nil || foldedKey(generic) {
			// encoding/json matches member names case-insensitively; the gateway's
			// names are exact, and so is this decoder.
			return
		}
		var m jsonRange
		if err := json.Unmarshal(data, &m); err != nil {
			// encoding/json is stricter in places we accept on purpose:
			// numbers for int64 written as 1e1, and keys that differ only in case
			// (encoding/json matches them case-insensitively).
			return
		}
		if int64(m.Header.Revision) != r.Header.Revision || int64(m.Count) != r.Count || m.More != r.More || len(m.Kvs) != len(r.Kvs) {
			t.Fatalf("decoders disagree on %q:\nwire %+v\njson %+v", data, r, m)
		}
		for i, kv := range r.Kvs {
			w := m.Kvs[i]
			if w == nil {
				continue
			}
			if !bytes.Equal(kv.Key, w.Key) || !bytes.Equal(kv.Value, w.Value) || kv.ModRevision != int64(w.ModRevision) {
				t.Fatalf("kv %d differs on %q: wire %v json %+v", i, data, kv, w)
			}
		}
	})
}

var rangeNames = []string{"header", "revision", "cluster_id", "member_id", "raft_term", "kvs", "more", "count",
	"key", "value", "create_revision", "mod_revision", "version", "lease"}

// foldedKey reports whether v holds an object member whose name matches one of
// rangeNames only when case is ignored.
func foldedKey(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			for _, name := range rangeNames {
				if k != name && strings.EqualFold(k, name) {
					return true
				}
			}
			if foldedKey(sub) {
				return true
			}
		}
	case []any:
		for _, sub := range v {
			if foldedKey(sub) {
				return true
			}
		}
	}
	return false
}

// FuzzDecodeAny runs every decoder on the input: none may panic or hang.
func FuzzDecodeAny(f *testing.F) {
	addCaptured(f)
	addAbsurd(f)
	f.Add([]byte(`{"error":{"grpc_code":14,"http_code":503,"message":"x","http_status":"y"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Arena
		_ = DecodeRange(data, &a, new(RangeResponse))
		_ = DecodePut(data, &a, new(PutResponse))
		_ = DecodeDeleteRange(data, &a, new(DeleteRangeResponse))
		_ = DecodeTxn(data, &a, new(TxnResponse))
		_ = DecodeLease(data, new(LeaseResponse))
		_ = DecodeLeases(data, new(LeaseLeasesResponse))
		_ = DecodeVersion(data, new(VersionResponse))
		_ = DecodeHealth(data, new(HealthResponse))
		_ = DecodeAuthenticate(data, new(AuthenticateResponse))
		_ = DecodeHeaderOnly(data, new(Header))
		_, _ = DecodeWatchLine(data, &a, new(WatchResponse))
		_, _ = DecodeLeaseLine(data, new(LeaseResponse))
		st := ParseErrorBody(500, data)
		_ = Classify(st.Code, st.Message)
	})
}

// FuzzLineReader feeds a stream in pieces of fuzzed sizes: the lines must be
// those of a plain split, whatever the chunking.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(1))
	f.Add([]byte("{\"result\":{}}\n{\"error\":{}}"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		lr := NewLineReader(&chunkReader{data: data, n: int(chunk%17) + 1}, int(chunk), 0)
		var got [][]byte
		for {
			line, err := lr.Next()
			if err != nil {
				break
			}
			got = append(got, append([]byte(nil), line...))
		}
		var want [][]byte
		for _, l := range bytes.Split(data, []byte("\n")) {
			if !isBlank(l) {
				want = append(want, l)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d: got %q want %q", i, got[i], want[i])
			}
		}
	})
}

type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.n, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzBase64 compares the decoder with encoding/base64 on any input.
func FuzzBase64(f *testing.F) {
	f.Add([]byte("Zm9vYmFy"))
	f.Add([]byte("Zg=="))
	f.Fuzz(func(t *testing.T, src []byte) {
		n := decodedLen(src)
		if bytes.ContainsAny(src, "\r\n") {
			// encoding/base64 skips line breaks; this decoder refuses them.
			if n >= 0 && decodeBase64(make([]byte, n), src) {
				t.Fatalf("%q: accepted a value with a line break", src)
			}
			return
		}
		want, werr := base64.StdEncoding.Strict().DecodeString(string(src))
		if n < 0 {
			if werr == nil {
				t.Fatalf("%q: length refused, stdlib decodes it", src)
			}
			return
		}
		dst := make([]byte, n)
		ok := decodeBase64(dst, src)
		if ok != (werr == nil) {
			t.Fatalf("%q: ok=%v, stdlib err=%v", src, ok, werr)
		}
		if ok && !bytes.Equal(dst, want) {
			t.Fatalf("%q: got %x want %x", src, dst, want)
		}
	})
}
