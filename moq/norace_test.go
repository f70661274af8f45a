//go:build !race

package moq

// raceEnabled: the tests run under the race detector.
const raceEnabled = false
