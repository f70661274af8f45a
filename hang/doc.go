// Package hang reads and writes broadcasts in hang, the media format of the
// moq-dev ecosystem (npm @moq/hang; played by @moq/watch, produced by
// @moq/publish; Rust crate hang in github.com/moq-dev/moq).
//
// A hang broadcast has a catalog track, "catalog.json", describing its
// renditions (codec, WebCodecs decoder configuration, container), and one
// track per rendition. In the catalog track each group starts with a JSON
// snapshot of the whole catalog; later frames of the group are RFC 7396 merge
// patches against it. In a media track each group starts with a keyframe, so
// a subscriber joining at the latest group can decode at once.
//
// Frames use the "legacy" container, the one @moq/publish writes and every
// hang player reads: a QUIC variable-length integer holding the presentation
// timestamp in microseconds, then the codec bitstream (for H.264 with a
// catalog description: length-prefixed NAL units as in MP4; without one:
// Annex B). The timestamp travels in the payload because moq-lite-03/04
// frames have none. On moq-lite-05, which carries frame timestamps, a
// TrackWriter also stamps each frame (timescale: microseconds), so relays
// and tools that read the moq-lite timestamp see the same time without
// parsing the payload; a subscriber's received track states its own
// timescale (milliseconds unless it asked for another), so the payload's
// microseconds stay the precise, version-independent time, and the one
// TrackReader returns.
package hang
