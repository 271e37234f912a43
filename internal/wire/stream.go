package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrLineTooLong is returned by LineReader for a line longer than its limit.
var ErrLineTooLong = errors.New("stream message exceeds the size limit")

// headSize is how much of a line over the limit LineReader keeps for Head.
const headSize = 1 << 10

// LineReader splits a newline-delimited stream into lines without relying on
// how the bytes were chunked: a line may span many reads, a read may hold many
// lines, and blank lines (a chunk holding only "\n") are skipped. A line has no
// length limit but the one given; it is copied once, from the reader into the
// line buffer. The buffer grows to hold a long line and shrinks back once the
// lines are short again: a stream that once carried a large message does not
// keep a buffer of its size for the rest of its life.
type LineReader struct {
	r     io.Reader
	buf   []byte
	base  int // the starting size of buf, which it shrinks back to
	start int // first unreturned byte
	end   int // end of the bytes read
	scan  int // where the search for '\n' resumes
	max   int
	err   error
	last  int  // length of the last line returned
	tail  bool // the last line returned had no newline: the stream ended after it
	long  bool // a line over the limit was met: Next fails until Resume
	skip  bool // the rest of that line is still to come: Resume discards it
	head  []byte
}

// NewLineReader returns a reader of r's lines, starting with a buffer of size
// bytes and refusing lines longer than limit bytes (limit <= 0: no limit).
func NewLineReader(r io.Reader, size, limit int) *LineReader {
	size = max(size, 512)
	return &LineReader{r: r, buf: make([]byte, size), base: size, max: limit}
}

// Tail reports whether the line Next last returned was the unterminated end of
// the stream: a line that fails to decode then is a cut stream, not a
// malformed message.
func (l *LineReader) Tail() bool { return l.tail }

// Head returns the first bytes (up to 1 KiB) of the line that made Next fail
// with ErrLineTooLong, enough to tell whose message it was.
func (l *LineReader) Head() []byte { return l.head }

// Resume lets Next go on after ErrLineTooLong: the rest of the line over the
// limit is read and discarded, never held, and the next line is returned.
// Without Resume, Next keeps failing with ErrLineTooLong.
func (l *LineReader) Resume() { l.long = false }

// Next returns the next non-blank line without its newline. The slice aliases
// the reader's buffer and is valid until the next call. At the end of the
// stream an unterminated last line is still returned (etcd 3.4 and 3.5 end
// streams with an error object and no newline); after it Next returns io.EOF or
// the read error.
func (l *LineReader) Next() ([]byte, error) {
	l.tail = false
	if l.long {
		return nil, l.tooLong()
	}
	l.shrink()
	for {
		if l.skip {
			i := bytes.IndexByte(l.buf[l.start:l.end], '\n')
			if i < 0 {
				l.start, l.scan, l.end = 0, 0, 0 // discarded, buffer reused
				if l.err != nil {
					return nil, l.err
				}
				l.fill()
				continue
			}
			l.start += i + 1
			l.scan = l.start
			l.skip = false
		}
		if i := bytes.IndexByte(l.buf[l.scan:l.end], '\n'); i >= 0 {
			nl := l.scan + i
			line := l.buf[l.start:nl]
			l.start, l.scan = nl+1, nl+1
			if isBlank(line) {
				continue
			}
			if l.max > 0 && len(line) > l.max {
				l.setLong(line, false)
				return nil, l.tooLong()
			}
			l.last = len(line)
			return line, nil
		}
		l.scan = l.end
		if l.max > 0 && l.end-l.start > l.max {
			l.setLong(l.buf[l.start:l.end], true)
			l.start, l.scan, l.end = 0, 0, 0
			return nil, l.tooLong()
		}
		if l.err != nil {
			line := l.buf[l.start:l.end]
			l.start, l.scan = l.end, l.end
			if !isBlank(line) {
				l.tail = true
				l.last = len(line)
				return line, nil
			}
			return nil, l.err
		}
		l.fill()
	}
}

// setLong records a line over the limit; unfinished says its end is still to
// be read.
func (l *LineReader) setLong(line []byte, unfinished bool) {
	l.long, l.skip = true, unfinished
	l.head = append(l.head[:0], line[:min(len(line), headSize)]...)
}

func (l *LineReader) tooLong() error {
	return fmt.Errorf("%w (%d bytes)", ErrLineTooLong, l.max)
}

// shrink gives back a buffer grown for a long line once the lines are short
// again. It runs between lines, when nothing returned aliases the buffer.
func (l *LineReader) shrink() {
	if len(l.buf) <= l.base || l.last > len(l.buf)/4 {
		return
	}
	pending := l.end - l.start
	size := l.base
	for size < 2*pending {
		size *= 2
	}
	if size >= len(l.buf) {
		return
	}
	nb := make([]byte, size)
	copy(nb, l.buf[l.start:l.end])
	l.buf = nb
	l.scan -= l.start
	l.start, l.end = 0, pending
}

// fill reads more bytes, first making room by moving the pending line to the
// front of the buffer or by growing the buffer, never past the limit.
func (l *LineReader) fill() {
	if l.end == len(l.buf) {
		pending := l.end - l.start
		if l.start > 0 && pending < len(l.buf)/2 {
			copy(l.buf, l.buf[l.start:l.end])
		} else {
			size := 2 * len(l.buf)
			if l.max > 0 {
				// A line of max bytes and its newline fit; more is refused.
				size = min(size, max(l.max+1, pending+1))
			}
			nb := make([]byte, size)
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
			st = d.streamError()
		default:
			d.skip()
		}
	}
	if d.err == nil && !seen {
		d.fail(`stream message has neither "result" nor "error"`)
	}
	return st
}

// WatchIDOf returns the watch_id of a /watch stream message from the start of
// its line, such as LineReader.Head of a line over the limit: etcd writes the
// header and the watch_id before the events, in field order. False when the
// start holds no whole watch_id (watch_id 0 is omitted).
func WatchIDOf(head []byte) (int64, bool) {
	const key = `"watch_id":`
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(head[i+len(key):], " ")
	quoted := len(rest) > 0 && rest[0] == '"'
	if quoted {
		rest = rest[1:]
	}
	n := 0
	if n < len(rest) && rest[n] == '-' {
		n++
	}
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == len(rest) || quoted && rest[n] != '"' {
		return 0, false // cut short: the number may go on
	}
	id, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	return id, err == nil
}

// streamError reads the {"error":...} member that ends a stream, an object
// or (in old versions) a bare message, as a Status.
func (d *decoder) streamError() *Status {
	st := &Status{Code: -1}
	if d.peek() == '{' {
		d.statusObject(st)
	} else {
		st.Message = d.str()
	}
	if st.Code < 0 {
		st.Code = CodeFromHTTP(st.HTTPStatus)
	}
	return st
}
