package wire

// Paths of the gateway RPCs, relative to the API prefix (/v3, /v3beta or /v3alpha).
const (
	PathRange          = "/kv/range"
	PathPut            = "/kv/put"
	PathDeleteRange    = "/kv/deleterange"
	PathTxn            = "/kv/txn"
	PathCompaction     = "/kv/compaction"
	PathWatch          = "/watch"
	PathLeaseGrant     = "/lease/grant"
	PathLeaseRevoke    = "/lease/revoke"
	PathLeaseKeepAlive = "/lease/keepalive"
	PathLeaseTTL       = "/lease/timetolive"
	PathLeaseLeases    = "/lease/leases"
	PathAuthenticate   = "/auth/authenticate"
	PathStatus         = "/maintenance/status"
)

// Paths served outside the API prefix.
const (
	PathVersion = "/version"
	PathHealth  = "/health"
)

// Header mirrors etcdserverpb.ResponseHeader.
type Header struct {
	ClusterID uint64
	MemberID  uint64
	Revision  int64
	RaftTerm  uint64
}
