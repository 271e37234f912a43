package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLineReaderShrinksAfterALongLine(t *testing.T) {
	big := strings.Repeat("y", 4<<20)
	small := strings.Repeat("s", 100)
	in := small + "\n" + big + "\n" + strings.Repeat(small+"\n", 50)
	for name, r := range map[string]func() *LineReader{
		"one read":    func() *LineReader { return NewLineReader(strings.NewReader(in), 4096, 0) },
		"small reads": func() *LineReader { return NewLineReader(&chunkReader{data: []byte(in), n: 3000}, 4096, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			lr := r()
			line, err := lr.Next()
			require.NoError(t, err)
			assert.Equal(t, small, string(line))
			line, err = lr.Next()
			require.NoError(t, err)
			require.Len(t, line, len(big))
			assert.GreaterOrEqual(t, len(lr.buf), len(big), "grown to hold the long line")
			for i := 0; i < 50; i++ {
				line, err = lr.Next()
				require.NoError(t, err)
				require.Equal(t, small, string(line), "line %d after the long one", i)
			}
			assert.LessOrEqual(t, len(lr.buf), 64<<10, "the buffer shrank back once the lines were short again")
		})
	}
}

func TestLineReaderKeepsABufferLinesStillNeed(t *testing.T) {
	// Lines of similar size do not make the buffer shrink and regrow each time.
	line := strings.Repeat("m", 100<<10)
	lr := NewLineReader(strings.NewReader(strings.Repeat(line+"\n", 20)), 4096, 0)
	_, err := lr.Next()
	require.NoError(t, err)
	buf := &lr.buf[0]
	for i := 1; i < 20; i++ {
		got, err := lr.Next()
		require.NoError(t, err)
		require.Len(t, got, len(line))
	}
	assert.Same(t, buf, &lr.buf[0], "one buffer for lines of one size")
}

func TestLineReaderResumeSkipsTheLongLine(t *testing.T) {
	long := `{"result":{"header":{"revision":"9"},"watch_id":"7","events":[` + strings.Repeat("x", 10000) + `]}}`
	in := "a\n" + long + "\nb\n"
	for name, r := range map[string]func() *LineReader{
		"one read":   func() *LineReader { return NewLineReader(strings.NewReader(in), 512, 1000) },
		"byte reads": func() *LineReader { return NewLineReader(&chunkReader{data: []byte(in), n: 1}, 512, 1000) },
		"big buffer": func() *LineReader { return NewLineReader(strings.NewReader(in), 64<<10, 1000) },
	} {
		t.Run(name, func(t *testing.T) {
			lr := r()
			line, err := lr.Next()
			require.NoError(t, err)
			assert.Equal(t, "a", string(line))
			_, err = lr.Next()
			require.ErrorIs(t, err, ErrLineTooLong)
			head := string(lr.Head())
			assert.True(t, strings.HasPrefix(long, head), "the start of the line, to tell whose it is")
			assert.GreaterOrEqual(t, len(head), 500)
			assert.LessOrEqual(t, len(lr.buf), 64<<10, "never more than the limit held")
			_, err = lr.Next()
			require.ErrorIs(t, err, ErrLineTooLong, "without Resume it stays an error")
			lr.Resume()
			line, err = lr.Next()
			require.NoError(t, err)
			assert.Equal(t, "b", string(line), "the rest of the long line was discarded")
			_, err = lr.Next()
			assert.EqualError(t, err, "EOF")
		})
	}
}

func TestLineReaderGrowsNoFurtherThanTheLimit(t *testing.T) {
	lr := NewLineReader(&chunkReader{data: []byte(strings.Repeat("z", 1<<20)), n: 4096}, 512, 100<<10)
	_, err := lr.Next()
	require.ErrorIs(t, err, ErrLineTooLong)
	assert.LessOrEqual(t, len(lr.buf), 100<<10+4096, "not doubled past the limit")
}

func TestWatchIDOf(t *testing.T) {
	for _, tc := range []struct {
		head string
		id   int64
		ok   bool
	}{
		{`{"result":{"header":{"cluster_id":"1","revision":"9"},"watch_id":"7","events":[`, 7, true},
		{`{"result":{"header":{"revision":"9"},"watch_id":"-1","created":true}}`, -1, true},
		{`{"result":{"header":{"revision":"9"},"watch_id":12,"events":[`, 12, true},
		{`{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"aw=="`, 0, false},
		{`{"result":{"header":{"revision":"9"},"watch_id":"12`, 0, false},
		{`{"result":{"header":{"revision":"9"},"watch_id":"x"}}`, 0, false},
	} {
		id, ok := WatchIDOf([]byte(tc.head))
		assert.Equal(t, tc.ok, ok, tc.head)
		assert.Equal(t, tc.id, id, tc.head)
	}
}
