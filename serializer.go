package etcdgw

import (
	"encoding/json"
	"fmt"
)

// Serializer turns the values given to Set, SetNX, SetX, OpPut and Compare
// into the bytes stored in etcd, and Client.Decode turns stored bytes back.
// Implementations must be safe for concurrent use.
type Serializer interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON stores values as their encoding/json form, so that Set(ctx, k, 42)
// stores "42" and Decode(value, &n) reads it back. It is the default.
// [lua-resty-etcd: serializer = "json"]
var JSON Serializer = jsonSerializer{}

// Raw stores strings and byte slices as they are: Marshal takes a string or a
// []byte (anything else, nil included, is an error), Unmarshal writes to a
// *string or a *[]byte (a copy). [lua-resty-etcd: serializer = "raw"]
var Raw Serializer = rawSerializer{}

// RawValue is a value written as is, whatever the client's serializer: Set,
// SetNX, SetX and OpPut store its bytes unchanged, and Compare of a Value
// compares them unchanged, so that a client whose serializer is JSON can still
// write and compare plain strings (the values of locks and elections, which
// other etcd clients read as raw bytes). A nil RawValue is the empty value.
type RawValue []byte

// marshal is s.Marshal, except that a RawValue is taken as is.
func marshal(s Serializer, v any) ([]byte, error) {
	if r, ok := v.(RawValue); ok {
		return r, nil
	}
	return s.Marshal(v)
}

type jsonSerializer struct{}

func (jsonSerializer) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonSerializer) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonSerializer) String() string                     { return "JSON" }

type rawSerializer struct{}

func (rawSerializer) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case nil:
		return nil, fmt.Errorf("etcdgw: Raw serializer: nil value")
	}
	return nil, fmt.Errorf("etcdgw: Raw serializer: unsupported type %T (string or []byte only)", v)
}

func (rawSerializer) Unmarshal(data []byte, v any) error {
	switch v := v.(type) {
	case *string:
		*v = string(data)
		return nil
	case *[]byte:
		*v = append([]byte(nil), data...)
		return nil
	}
	return fmt.Errorf("etcdgw: Raw serializer: cannot decode into %T (*string or *[]byte only)", v)
}

func (rawSerializer) String() string { return "Raw" }
