// Package interop holds the tests that run moqp2p against independent
// moq-lite implementations. The peers live in their own Go modules
// (gomoqt-lite03, gomoqt-lite04) because their quic-go versions conflict with
// ours; the tests build them with `go build` and drive them as subprocesses
// over loopback.
package interop
