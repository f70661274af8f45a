// Package broadcast is the in-memory media model of moq-lite: broadcasts made
// of named tracks, tracks made of numbered groups, groups made of frames, and an
// Origin that maps paths to the broadcasts announced there.
//
// Every level comes as a producer/consumer pair over shared state, as in the
// Rust moq-lite model. A producer writes; any number of consumers read, each
// with its own cursor. A frame's payload is stored once and handed to every
// consumer as the same slice, so fan-out costs no copies and no allocations per
// frame per consumer.
//
// Memory is bounded everywhere: a group caches at most Limits.GroupMaxBytes and
// Limits.GroupMaxFrames (a consumer that falls behind the eviction point gets
// ErrLagged), and a track keeps its latest group plus older groups within
// Limits.CacheMaxAge, Limits.CacheMaxBytes and Limits.CacheMaxGroups. A slow
// consumer therefore never stalls a producer or other consumers.
//
// Where to start: a publisher makes a broadcast with New, adds tracks with
// Producer.CreateTrack, and writes each group with TrackProducer.AppendGroup,
// GroupProducer.WriteFrame and GroupProducer.Finish; Producer.Consume is the
// read side it hands to moq's Publish. A subscriber gets a TrackConsumer
// (from moq's Subscribe, or Consumer.SubscribeTrack locally) and reads
// groups with TrackConsumer.NextGroup and their frames with
// GroupConsumer.ReadFrame. Errors carry moq-lite codes (Error, Code, CodeOf)
// and match the package's sentinels with errors.Is.
//
// The package does no I/O. The session package moves this model over the
// wire; applications reach peers through package moq.
package broadcast
