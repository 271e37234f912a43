// Package cache keeps a consistent, typed, in-memory mirror of one etcd
// prefix, for gateways and controllers (what client-go calls an informer),
// built on the public API of package etcdgw.
//
// Start lists the prefix in pages (WithPageSize) at one revision R, then
// watches it from R+1 with progress notifications and fragments, in the
// background until Close. Values are decoded into T with the client's
// serializer once, when they change; a value that does not decode is kept with
// Item.Err set. Get, List, Len and Revision read the mirror; every change up to
// Revision() is applied, and Revision() never decreases: responses from a
// member that is behind are ignored and events at or below it are dropped.
//
// Handlers (AddHandler) get one Batch per watch response while they keep up:
// whole etcd revisions, never a split one, so that a router is rebuilt once
// per batch rather than once per event. A handler that lags gets the responses
// it missed merged into one batch with the net change per key, so what waits
// for it is bounded by the number of keys.
//
// # Compaction
//
// A live watch is not hurt by compaction; a watch that resumes after a
// disconnect from a compacted revision is. The mirror then lists the prefix
// again, keys only, at a revision R2, compares create and mod revisions with
// what it holds, reads values only for the keys that changed, and delivers one
// Batch with Relist set and the exact delta: Added for new keys, Updated for
// changed ones, Deleted for missing ones, Deleted then Added for a key deleted
// and created again, nothing for unchanged keys. It then watches from R2+1.
// Progress notifications keep an idle mirror's resume point current, which
// makes such relists rare: etcd sends them every
// --watch-progress-notify-interval (10 minutes by default), and over HTTP/2
// WithProgressInterval asks for them more often.
//
// A store restored from a snapshot to a lower revision gives no sign on the
// watch, which waits for revisions the store has not reached. Sync notices it:
// a linearizable read that answers below Revision() (a member that is behind
// never answers one) makes the mirror list again the same way, and that
// Relist batch carries the lower revision, the one exception to "Revision()
// never decreases". Call Sync now and then if restores can happen, or restore
// with `etcdutl snapshot restore --bump-revision N --mark-compacted`, which
// moves the revision past every revision the mirror saw and marks the old ones
// compacted: the watch's resume then fails with a compaction and the mirror
// relists as usual.
//
// # Freshness
//
// WaitForRevision waits for a revision, such as that of the caller's own
// write. Sync waits until the mirror holds every change committed before the
// call: it costs a count-only read, and on an idle prefix a keys-only read of
// the prefix every 100 ms until the mirror matches (plus progress requests on
// HTTP/2).
package cache
