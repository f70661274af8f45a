package broadcast

import "strings"

// CleanPath normalises a broadcast path the way moq-lite does: leading and
// trailing slashes are removed and runs of slashes collapse to one, so
// "/a//b/" becomes "a/b". gomoqt's rooted paths ("/bench") therefore name the
// same broadcast as moq-dev's ("bench").
func CleanPath(p string) string {
	if !needsClean(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	return b.String()
}

func needsClean(p string) bool {
	if p == "" {
		return false
	}
	return p[0] == '/' || p[len(p)-1] == '/' || strings.Contains(p, "//")
}

// HasPrefix reports whether the clean path p lies under the clean prefix,
// matching whole segments: "foo" is a prefix of "foo" and "foo/bar", not of
// "foobar". The empty prefix matches every path.
func HasPrefix(p, prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}

// StripPrefix returns the part of the clean path p below prefix, and whether
// prefix matched (see HasPrefix).
func StripPrefix(p, prefix string) (string, bool) {
	if !HasPrefix(p, prefix) {
		return "", false
	}
	if prefix == "" {
		return p, true
	}
	return strings.TrimPrefix(p[len(prefix):], "/"), true
}

// JoinPath joins a prefix and a suffix with one slash and cleans the result.
func JoinPath(prefix, suffix string) string {
	prefix, suffix = CleanPath(prefix), CleanPath(suffix)
	switch {
	case prefix == "":
		return suffix
	case suffix == "":
		return prefix
	}
	return prefix + "/" + suffix
}
