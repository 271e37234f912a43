package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is returned by LineReader for a line longer than its limit.
var ErrLineTooLong = errors.New("stream message exceeds the size limit")

// LineReader splits a newline-delimited stream into lines without relying on
// how the bytes were chunked: a line may span many reads, a read may hold many
// lines, and blank lines (a chunk holding only "\n") are skipped. A line has no
// length limit but the one given; it is copied once, from the reader into the
// line buffer, and the buffer grows to hold the longest line seen.
type LineReader struct {
	r     io.Reader
	buf   []byte
	start int // first unreturned byte
	end   int // end of the bytes read
	scan  int // where the search for '\n' resumes
	max   int
	err   error
	tail  bool // the last line returned had no newline: the stream ended after it
}

// NewLineReader returns a reader of r's lines, starting with a buffer of size
// bytes and refusing lines longer than limit bytes (limit <= 0: no limit).
func NewLineReader(r io.Reader, size, limit int) *LineReader {
	return &LineReader{r: r, buf: make([]byte, max(size, 512)), max: limit}
}

// Tail reports whether the line Next last returned was the unterminated end of
// the stream: a line that fails to decode then is a cut stream, not a
// malformed message.
func (l *LineReader) Tail() bool { return l.tail }

// Next returns the next non-blank line without its newline. The slice aliases
// the reader's buffer and is valid until the next call. At the end of the
// stream an unterminated last line is still returned (etcd 3.4 and 3.5 end
// streams with an error object and no newline); after it Next returns io.EOF or
// the read error.
func (l *LineReader) Next() ([]byte, error) {
	l.tail = false
	for {
		if i := bytes.IndexByte(l.buf[l.scan:l.end], '\n'); i >= 0 {
			nl := l.scan + i
			line := l.buf[l.start:nl]
			l.start, l.scan = nl+1, nl+1
			if isBlank(line) {
				continue
			}
			if l.max > 0 && len(line) > l.max {
				l.err = fmt.Errorf("%w (%d bytes)", ErrLineTooLong, l.max)
				l.start, l.scan = l.end, l.end
				return nil, l.err
			}
			return line, nil
		}
		l.scan = l.end
		if l.max > 0 && l.end-l.start > l.max {
			l.err = fmt.Errorf("%w (%d bytes)", ErrLineTooLong, l.max)
			l.start, l.scan = l.end, l.end
			return nil, l.err
		}
		if l.err != nil {
			line := l.buf[l.start:l.end]
			l.start, l.scan = l.end, l.end
			if !isBlank(line) {
				l.tail = true
				return line, nil
			}
			return nil, l.err
		}
		l.fill()
	}
}

// fill reads more bytes, first making room by moving the pending line to the
// front of the buffer or by growing the buffer.
func (l *LineReader) fill() {
	if l.end == len(l.buf) {
		pending := l.end - l.start
		if l.start > 0 && pending < len(l.buf)/2 {
			copy(l.buf, l.buf[l.start:l.end])
		} else {
			nb := make([]byte, 2*len(l.buf))
			copy(nb, l.buf[l.start:l.end])
			l.buf = nb
		}
		l.scan -= l.start
		l.start, l.end = 0, pending
	}
	n, err := l.r.Read(l.buf[l.end:])
	l.end += n
	if err != nil {
		l.err = err
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\r' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

// DecodeWatchLine decodes one line of a /watch stream. A {"result":...} line
// fills r and returns nil, nil; an {"error":...} line returns its status.
func DecodeWatchLine(line []byte, a *Arena, r *WatchResponse) (*Status, error) {
	d := newDecoder(line, a)
	st := d.envelope(r, nil)
	return st, d.end()
}

// DecodeLeaseLine decodes one line of a /lease/keepalive stream, as
// DecodeWatchLine does for watches.
func DecodeLeaseLine(line []byte, r *LeaseResponse) (*Status, error) {
	d := newDecoder(line, nil)
	st := d.envelope(nil, r)
	return st, d.end()
}

// envelope reads {"result":...} into w or l, or {"error":...} into the returned
// status. A line with neither is malformed.
func (d *decoder) envelope(w *WatchResponse, l *LeaseResponse) *Status {
	var st *Status
	seen := false
	if !d.open('{') {
		d.fail("expected a stream message")
		return nil
	}
	for d.next('}') {
		switch string(d.key()) {
		case "result":
			seen = true
			if w != nil {
				d.watchResponse(w)
			} else {
				d.leaseResponse(l)
			}
		case "error":
			seen = true
			st = &Status{Code: -1}
			if d.peek() == '{' {
				d.statusObject(st)
			} else {
				st.Message = d.str()
			}
			if st.Code < 0 {
				st.Code = CodeFromHTTP(st.HTTPStatus)
			}
		default:
			d.skip()
		}
	}
	if d.err == nil && !seen {
		d.fail(`stream message has neither "result" nor "error"`)
	}
	return st
}
