package wire

import "encoding/base64"

var b64 = base64.StdEncoding.Strict()

// decodedLen is the exact length of the standard, padded base64 text src, or -1
// when its length cannot be that of such a text.
func decodedLen(src []byte) int {
	n := len(src)
	if n%4 != 0 {
		return -1
	}
	if n == 0 {
		return 0
	}
	d := n / 4 * 3
	if src[n-1] == '=' {
		d--
		if src[n-2] == '=' {
			d--
		}
	}
	return d
}

// decodeBase64 decodes the standard, padded base64 text src into dst, which must
// hold exactly decodedLen(src) bytes, and reports whether src was valid.
func decodeBase64(dst, src []byte) bool {
	n, err := b64.Decode(dst, src)
	// encoding/base64 skips '\r' and '\n'; a value holding them (escaped in the
	// JSON string) decodes short, and is refused here.
	return err == nil && n == len(dst)
}
