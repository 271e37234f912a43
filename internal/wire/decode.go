package wire

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError reports input that is not the JSON the gateway sends.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what was wrong there
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at offset %d: %s", e.Offset, e.Msg)
}

// maxDepth bounds nesting, so that hostile input cannot exhaust the stack.
const maxDepth = 128

// decoder is a JSON scanner over one complete document. Errors are sticky: the
// first one is kept, the position moves to the end, and every later read
// returns a zero value, so decoding code checks d.err once at the end.
type decoder struct {
	data    []byte
	pos     int
	first   bool // no member read yet in the innermost open object or array
	depth   int
	err     error
	arena   *Arena
	scratch []byte
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = &SyntaxError{Offset: d.pos, Msg: msg}
	}
	d.pos = len(d.data)
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\n', '\r', '\t':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of the input.
func (d *decoder) peek() byte {
	// The gateway writes compact JSON: most of the time the next byte is
	// not a space, and one comparison decides it.
	if d.pos < len(d.data) && d.data[d.pos] > ' ' {
		return d.data[d.pos]
	}
	d.ws()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// open enters an object ('{') or array ('['). It reports false for null, which
// stands for an absent value, and on error.
func (d *decoder) open(c byte) bool {
	switch d.peek() {
	case c:
		d.depth++
		if d.depth > maxDepth {
			d.fail("nesting too deep")
			return false
		}
		d.pos++
		d.first = true
		return true
	case 'n':
		d.literal("null")
		return false
	case 0:
		d.fail("unexpected end of input")
	default:
		d.fail(fmt.Sprintf("expected %q", c))
	}
	return false
}

// next reports whether another member or element follows in the innermost open
// object or array, consuming the separating comma; at the closing byte it leaves
// the container and reports false.
func (d *decoder) next(close byte) bool {
	if d.err != nil {
		return false
	}
	c := d.peek()
	if c == close {
		d.pos++
		d.depth--
		d.first = false
		return false
	}
	if d.first {
		if c == 0 {
			d.fail("unexpected end of input")
			return false
		}
		d.first = false
		return true
	}
	if c != ',' {
		if c == 0 {
			d.fail("unexpected end of input")
		} else {
			d.fail(fmt.Sprintf("expected ',' or %q", close))
		}
		return false
	}
	d.pos++
	d.ws()
	return true
}

// key reads an object member's name and its colon.
func (d *decoder) key() []byte {
	k := d.rawString()
	if d.peek() != ':' {
		d.fail("expected ':'")
		return nil
	}
	d.pos++
	return k
}

// rawString reads a JSON string and returns its contents, unescaped. The result
// aliases the input or the decoder's scratch buffer: it is valid until the next
// read.
func (d *decoder) rawString() []byte {
	if d.peek() != '"' {
		if d.err == nil {
			d.fail("expected string")
		}
		return nil
	}
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return d.data[start:i]
		case c == '\\':
			return d.unescape(start, i)
		case c < 0x20:
			d.pos = i
			d.fail("control character in string")
			return nil
		}
	}
	d.pos = len(d.data)
	d.fail("unterminated string")
	return nil
}

// unescape finishes a string that has an escape at i, copying it into scratch.
func (d *decoder) unescape(start, i int) []byte {
	b := append(d.scratch[:0], d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.scratch = b
			return b
		case c < 0x20:
			d.pos = i
			d.fail("control character in string")
			return nil
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.data) {
			break
		}
		switch e := d.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := parseHex4(d.data[i+2:])
			if !ok {
				d.pos = i
				d.fail("invalid \\u escape")
				return nil
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(d.data) && d.data[i] == '\\' && d.data[i+1] == 'u' {
					r2, ok = parseHex4(d.data[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			d.pos = i
			d.fail("invalid escape in string")
			return nil
		}
		i += 2
	}
	d.pos = len(d.data)
	d.fail("unterminated string")
	return nil
}

// parseHex4 parses the four hex digits that begin b.
func parseHex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// literal consumes the literal word, which must come next.
func (d *decoder) literal(word string) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		d.fail("invalid literal")
		return
	}
	d.pos += len(word)
}

// str reads a string value, or null as "".
func (d *decoder) str() string {
	if d.peek() == 'n' {
		d.literal("null")
		return ""
	}
	return string(d.rawString())
}

// boolean reads true, false or null (false).
func (d *decoder) boolean() bool {
	switch d.peek() {
	case 't':
		d.literal("true")
		return d.err == nil
	case 'f':
		d.literal("false")
	case 'n':
		d.literal("null")
	default:
		d.fail("expected boolean")
	}
	return false
}

// numberToken reads an int64 or uint64 field's token: the gateway writes 64-bit
// integers as strings, 32-bit ones as numbers, and accepts either; null is 0.
func (d *decoder) numberToken() []byte {
	switch c := d.peek(); {
	case c == '"':
		return d.rawString()
	case c == '-' || '0' <= c && c <= '9':
		start := d.pos
		for d.pos < len(d.data) {
			c := d.data[d.pos]
			if '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				d.pos++
				continue
			}
			break
		}
		return d.data[start:d.pos]
	case c == 'n':
		d.literal("null")
		return nil
	case c == 0:
		d.fail("unexpected end of input")
	default:
		d.fail("expected number")
	}
	return nil
}

func (d *decoder) int64() int64 {
	tok := d.numberToken()
	if len(tok) == 0 {
		return 0
	}
	neg := tok[0] == '-'
	digits := tok
	if neg {
		digits = tok[1:]
	}
	if u, ok := parseDigits(digits); ok {
		if !neg && u <= math.MaxInt64 {
			return int64(u)
		}
		if neg && u <= 1<<63 {
			return -int64(u)
		}
		d.fail("integer out of range")
		return 0
	}
	f, ok := d.integralFloat(tok)
	if !ok || f < math.MinInt64 || f >= math.MaxInt64 {
		d.fail("expected integer")
		return 0
	}
	return int64(f)
}

func (d *decoder) uint64() uint64 {
	tok := d.numberToken()
	if len(tok) == 0 {
		return 0
	}
	if u, ok := parseDigits(tok); ok {
		return u
	}
	f, ok := d.integralFloat(tok)
	if !ok || f < 0 || f >= math.MaxUint64 {
		d.fail("expected unsigned integer")
		return 0
	}
	return uint64(f)
}

// integralFloat accepts the forms protojson accepts for integers, such as 1e3.
func (d *decoder) integralFloat(tok []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || f != math.Trunc(f) {
		return 0, false
	}
	return f, true
}

// parseDigits parses a non-empty run of decimal digits that fits in a uint64.
func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		c -= '0'
		if c > 9 {
			return 0, false
		}
		v := u*10 + uint64(c)
		if u > math.MaxUint64/10 || v < u*10 {
			return 0, false
		}
		u = v
	}
	return u, true
}

// bytes reads a base64 string into arena memory; null and "" are nil.
func (d *decoder) bytes() []byte {
	if d.peek() == 'n' {
		d.literal("null")
		return nil
	}
	if dst, ok := d.plainBytes(); ok {
		return dst
	}
	src := d.rawString()
	if len(src) == 0 {
		return nil
	}
	n := decodedLen(src)
	if n < 0 {
		d.fail("invalid base64 length")
		return nil
	}
	// The rest of the input bounds what the rest of the response can decode to.
	dst := d.arena.alloc(n, (len(d.data)-d.pos)/4*3+n)
	if !decodeBase64(dst, src) {
		d.fail("invalid base64")
		return nil
	}
	return dst
}

// plainBytes is the fast path of bytes for a string without escapes, which is
// what the gateway always sends: it finds the closing quote with IndexByte and
// lets the base64 decoder check the bytes between, since no byte the alphabet
// accepts needs escaping in JSON. It reports false, having consumed nothing,
// when the string needs the careful path (escapes, or an error to report).
func (d *decoder) plainBytes() ([]byte, bool) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, false
	}
	start := d.pos + 1
	j := bytes.IndexByte(d.data[start:], '"')
	if j < 0 {
		return nil, false
	}
	src := d.data[start : start+j]
	n := decodedLen(src)
	switch {
	case n < 0:
		return nil, false
	case n == 0:
		d.pos = start + j + 1
		return nil, true
	}
	end := start + j + 1
	dst := d.arena.alloc(n, (len(d.data)-end)/4*3+n)
	if !decodeBase64(dst, src) {
		return nil, false
	}
	d.pos = end
	return dst, true
}

// skip consumes one value of any kind.
func (d *decoder) skip() {
	switch c := d.peek(); {
	case c == '"':
		d.rawString()
	case c == '{' || c == '[':
		d.skipContainer()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		if start := d.pos; !validNumber(d.numberToken()) {
			d.pos = start
			d.fail("invalid number")
		}
	case c == 0:
		d.fail("unexpected end of input")
	default:
		d.fail("unexpected character")
	}
}

// validNumber reports whether b is a JSON number.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func (d *decoder) skipContainer() {
	if d.peek() == '{' {
		if d.open('{') {
			for d.next('}') {
				d.key()
				d.skip()
			}
		}
		return
	}
	if d.open('[') {
		for d.next(']') {
			d.skip()
		}
	}
}

// end checks that only white space follows the document.
func (d *decoder) end() error {
	if d.err == nil && d.peek() != 0 {
		d.fail("data after the JSON value")
	}
	return d.err
}
