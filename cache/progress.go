package cache

import (
	"context"
	"strconv"
	"strings"
)

// progressSafe reports whether an etcd of this version answers a progress
// request only with a revision its watches have reached: 3.4.25, 3.5.8 and
// later. Before, the answer could overtake events (etcd #15220), and a watch
// that trusted it would skip them.
func progressSafe(version string) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 3 {
		return false
	}
	num := func(s string) int {
		if i := strings.IndexAny(s, "-+"); i >= 0 {
			s = s[:i]
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	major, minor, patch := num(parts[0]), num(parts[1]), num(parts[2])
	switch {
	case major < 0 || minor < 0 || patch < 0:
		return false
	case major != 3:
		return major > 3
	case minor > 5:
		return true
	case minor == 5:
		return patch >= 8
	case minor == 4:
		return patch >= 25
	}
	return false
}

// canRequestProgress reports whether the mirror may ask for progress: the
// server has the fix for etcd #15220. The answer is asked once and kept.
func (c *Cache[T]) canRequestProgress(ctx context.Context) bool {
	c.progressOnce.Lock()
	defer c.progressOnce.Unlock()
	if c.progressKnown {
		return c.progressOK
	}
	v, err := c.c.Version(ctx)
	if err != nil {
		return false // ask again next time
	}
	c.progressKnown, c.progressOK = true, progressSafe(v.Server)
	return c.progressOK
}
