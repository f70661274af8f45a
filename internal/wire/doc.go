// Package wire is the moq-lite wire codec for the drafts lite-01 through
// lite-04, byte-compatible with the Rust moq-lite 0.16 crate and the JS
// @moq/lite 0.2 package.
//
// One codec serves every version: each message type has a single encoder and
// decoder, and the differences between drafts are answered by small
// predicates on [Version] (see version.go), so adding a draft means adding
// cases there rather than copying the codec.
//
// # Framing
//
// A bidirectional stream starts with a stream-type varint ([StreamType]),
// written by the side that opens it; a unidirectional stream starts with a
// [UniStreamType]. After that every message is
//
//	length (QUIC varint) || body
//
// where length counts only the body. A body must be consumed exactly: a
// decoder that finds bytes left over reports [ErrLong], one that runs out
// reports [ErrShort]. Unknown trailing fields are therefore impossible.
// Two exceptions exist: typed subscribe responses (lite-03+) put a type
// varint before the length (see [AppendSubscribeResponse]), and the compat
// SETUP messages use a one-byte type and a big-endian u16 length (see
// [AppendClientSetup]).
//
// # Field encodings
//
//   - Integers are QUIC varints (RFC 9000 §16), minimal on encode, any
//     length accepted on decode.
//   - Priority and ordered are one raw byte (u8), not varints.
//   - Strings are a varint byte length followed by UTF-8.
//   - Optional group sequences ([GroupRef]) use the "+1" form: 0 means
//     unset, n means sequence n-1.
//   - Durations are varint milliseconds.
//
// Group payloads are not copied by this package: a group stream is a [Group]
// header followed by frames, each a size varint and that many payload bytes.
// Read sizes with [ReadVarint] and the payload directly into your own
// buffer; io.EOF at a frame boundary means the group is complete.
//
// Nothing in this package panics on input from the network, and all
// decoders bound allocations by the bytes actually present.
package wire
