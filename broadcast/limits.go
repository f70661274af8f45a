package broadcast

import "time"

// Limits bound the memory a track and its groups may hold. The zero value of
// any field means its default.
type Limits struct {
	// GroupMaxBytes caps the payload bytes cached per group; older frames are
	// evicted beyond it, and a single frame larger than it is refused with
	// ErrTooLarge. Default 32 MiB.
	GroupMaxBytes int64
	// GroupMaxFrames caps the frames cached per group. Default 1024.
	GroupMaxFrames int
	// CacheMaxAge is how long groups older than the latest stay cached for
	// consumers that ask for them. Default 5 s (moq-lite's MAX_GROUP_AGE).
	CacheMaxAge time.Duration
	// CacheMaxBytes caps the bytes of a track's cached groups other than the
	// latest one. Default 64 MiB.
	CacheMaxBytes int64
	// CacheMaxGroups caps the number of groups a track caches, the latest
	// included: a group costs memory beyond its payload, so a burst of tiny
	// groups must not pile up for CacheMaxAge. Default 1024 (34 s of 30
	// groups/s).
	CacheMaxGroups int
	// Backpressure makes the track lossless for its consumers: a group that
	// some open consumer has not received yet (neither RecvGroup, NextGroup
	// nor GetGroup has returned it, nor have RecvGroup or NextGroup skipped
	// past it) is never evicted, whatever the bounds above say, and the
	// producer is expected to call TrackProducer.WaitRoom before each new
	// group, so that the slowest consumer paces it instead of losing groups.
	// To read every group in sequence order, start the consumer with
	// StartAt(0) and call GetGroup(0), GetGroup(1), ...; RecvGroup gives
	// them in arrival order, NextGroup skips late ones. Use it for finite
	// transfers; live media leaves it off and drops old groups. The cache
	// then exceeds its bounds only by the groups a producer appends without
	// waiting.
	Backpressure bool
	// Budget, if set, bounds the bytes held by the groups of every track
	// made with these limits, together: see Budget. Nil means only the
	// bounds above apply.
	Budget *Budget
	// Now is the clock used for group ages; nil means time.Now. For tests.
	Now func() time.Time
}

// Defaults for Limits.
const (
	DefaultGroupMaxBytes  = 32 << 20
	DefaultGroupMaxFrames = 1024
	DefaultCacheMaxAge    = 5 * time.Second
	DefaultCacheMaxBytes  = 64 << 20
	DefaultCacheMaxGroups = 1024
)

func (l Limits) withDefaults() Limits {
	if l.GroupMaxBytes <= 0 {
		l.GroupMaxBytes = DefaultGroupMaxBytes
	}
	if l.GroupMaxFrames <= 0 {
		l.GroupMaxFrames = DefaultGroupMaxFrames
	}
	if l.CacheMaxAge <= 0 {
		l.CacheMaxAge = DefaultCacheMaxAge
	}
	if l.CacheMaxBytes <= 0 {
		l.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if l.CacheMaxGroups <= 0 {
		l.CacheMaxGroups = DefaultCacheMaxGroups
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}
