// Package wire encodes etcd v3 gateway requests and decodes its answers.
//
// The gateway speaks the proto3 JSON mapping with proto field names: int64 and
// uint64 as strings, bytes as standard base64 with padding, zero values omitted,
// and streams as newline-delimited {"result":...} objects ending in one
// {"error":...} object. Every rule here comes from the captured output in
// shared/reference/gateway-wire-protocol.md.
//
// Requests are appended to byte slices without reflection. Answers are decoded by
// a hand-written scanner straight into mvccpb values and this package's response
// types; key and value bytes and the KeyValue and Event structs come from an
// [Arena] in slabs, not one allocation each. The decoder accepts every version's
// quirks (numbers as strings or numbers, missing fields, unknown fields, random
// whitespace, null) and rejects anything that is not JSON with an error, never a
// panic.
package wire
