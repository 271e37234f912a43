package etcdgw

import (
	"testing"

	"github.com/etcdgw/etcdgw/internal/wire"
)

func (a watchAction) String() string {
	return [...]string{"quiet", "final", "resume", "failover", "resubscribe", "unshare", "reauth"}[a]
}

func TestDecideWatchEnd(t *testing.T) {
	const none = -1
	for _, tc := range []struct {
		name string
		end  watchEnd
		want watchAction
	}{
		// The caller ended the watch: whatever broke meanwhile, no word.
		{"ctx done, cut", watchEnd{how: watchCut, ctxDone: true, established: true}, watchQuiet},
		{"ctx done, status", watchEnd{how: watchStatus, code: wire.CodeUnavailable, ctxDone: true}, watchQuiet},
		{"ctx done, too large", watchEnd{how: watchTooLarge, ctxDone: true}, watchQuiet},
		{"ctx done, stalled", watchEnd{how: watchStalled, ctxDone: true}, watchQuiet},

		// A running stream that breaks is resumed and is nobody's failure.
		{"running stream cut (proxy idle cut, reset)", watchEnd{how: watchCut, established: true, code: none}, watchResume},
		{"running stream cut inside a line", watchEnd{how: watchCutMidLine, established: true, code: none}, watchResume},
		{"running shared stream cut", watchEnd{how: watchCut, established: true, shared: true, code: none}, watchResume},
		{"running shared stream cut inside a line", watchEnd{how: watchCutMidLine, established: true, shared: true, code: none}, watchResume},
		// Failing to establish one is the member's failure.
		{"connect refused, reset before created", watchEnd{how: watchCut, code: none}, watchFailover},
		{"cut inside the first line", watchEnd{how: watchCutMidLine, code: none}, watchFailover},
		{"no created in time", watchEnd{how: watchNoCreated, code: none}, watchFailover},
		{"no created on the shared stream, member silent", watchEnd{how: watchNoCreated, shared: true, code: none}, watchFailover},
		{"no created on the shared stream, member answers", watchEnd{how: watchNoCreated, shared: true, memberOK: true, code: none}, watchUnshare},
		// So is a silent stream whose member does not answer a probe.
		{"stalled", watchEnd{how: watchStalled, established: true, code: none}, watchFailover},
		{"stalled before created", watchEnd{how: watchStalled, code: none}, watchFailover},
		{"stalled shared stream", watchEnd{how: watchStalled, shared: true, established: true, code: none}, watchFailover},

		// Error answers: a non-200 status, an {"error"} line, a refused create.
		{"503 unavailable", watchEnd{how: watchStatus, code: wire.CodeUnavailable}, watchFailover},
		{"in-stream no leader", watchEnd{how: watchStatus, code: wire.CodeUnavailable, established: true}, watchFailover},
		{"504 deadline", watchEnd{how: watchStatus, code: wire.CodeDeadlineExceeded}, watchFailover},
		{"408/499 client connection is closing", watchEnd{how: watchStatus, code: wire.CodeCanceled}, watchFailover},
		{"502 unknown", watchEnd{how: watchStatus, code: wire.CodeUnknown}, watchFailover},
		{"internal", watchEnd{how: watchStatus, code: wire.CodeInternal}, watchFailover},
		{"429 resource exhausted", watchEnd{how: watchStatus, code: wire.CodeResourceExhausted}, watchFailover},
		{"aborted", watchEnd{how: watchStatus, code: wire.CodeAborted}, watchFailover},
		{"data loss", watchEnd{how: watchStatus, code: wire.CodeDataLoss}, watchFailover},
		{"permission denied", watchEnd{how: watchStatus, code: wire.CodePermissionDenied}, watchFinal},
		{"404 not found", watchEnd{how: watchStatus, code: wire.CodeNotFound}, watchFinal},
		{"400 invalid argument", watchEnd{how: watchStatus, code: wire.CodeInvalidArgument}, watchFinal},
		{"invalid token, none fetched yet", watchEnd{how: watchStatus, code: wire.CodeUnauthenticated, staleToken: true}, watchReauth},
		{"invalid token, a new one fetched already", watchEnd{how: watchStatus, code: wire.CodeUnauthenticated}, watchFinal},

		// etcd ended the watch, the client's own limit, garbage: final.
		{"canceled by etcd (compacted)", watchEnd{how: watchCanceled, established: true, code: none}, watchFinal},
		{"message over the limit", watchEnd{how: watchTooLarge, established: true, code: none}, watchFinal},
		{"fragments over the limit", watchEnd{how: watchTooLarge, established: true, shared: true, code: none}, watchFinal},
		{"malformed line", watchEnd{how: watchMalformed, established: true, code: none}, watchFinal},
		{"request not buildable", watchEnd{how: watchLocal, code: none}, watchFinal},

		// The shared stream dropped a slow watch: the same member, later.
		{"evicted", watchEnd{how: watchEvicted, shared: true, established: true, code: none}, watchResubscribe},

		// The stream was not opened at all: the unary call that failed did
		// its own accounting.
		{"no API prefix, no member", watchEnd{how: watchNoStart, code: none}, watchResume},
		{"no API prefix, unavailable", watchEnd{how: watchNoStart, code: wire.CodeUnavailable}, watchResume},
		{"token refused", watchEnd{how: watchNoStart, code: wire.CodeInvalidArgument}, watchFinal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideWatchEnd(tc.end); got != tc.want {
				t.Errorf("decideWatchEnd(%+v) = %v, want %v", tc.end, got, tc.want)
			}
		})
	}
}

func TestBackoffSteps(t *testing.T) {
	for n, want := range []int64{50, 100, 200, 400, 800, 1600, 2000, 2000} {
		for range 20 {
			d := backoff(n).Milliseconds()
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %dms, want %d..%dms", n, d, want/2, want)
			}
		}
	}
	if d := backoff(-1); d > watchBackoffMin {
		t.Errorf("backoff(-1) = %v", d)
	}
}
