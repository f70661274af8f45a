// Package examples holds small programs that show moqp2p at work, each a
// package main that runs with go run from the module root:
//
//   - clock: a peer publishes the time, one group per second; another
//     subscribes and prints each tick (go run ./examples/clock -n 3).
//   - chat: peers exchange lines, each publishing its own broadcast
//     chat/<peer-id> and subscribing to the others' it sees announced
//     (go run ./examples/chat).
//   - stream: a file or stdin cut into frames and groups, streamed to a
//     subscriber that writes it out; both print its SHA-256
//     (go run ./examples/stream).
//   - admission: a gate admits allow-listed peers only (moq.WithAdmission)
//     and ranges over IncomingSessions; a rejected peer sees its session
//     closed with an application code (go run ./examples/admission).
//   - discovery: peers form a DHT; one publishes a clock and another, with
//     no address for it, subscribes by name (go run ./examples/discovery).
//   - browser: a node publishes the clock and serves a page that shows it
//     live, using @moq/lite over WebTransport (go run ./examples/browser,
//     after npm ci in interop/jspeer).
//   - video: two nodes, libp2p peers: a page on node A publishes the
//     browser's camera (@moq/publish), a page on node B plays it
//     (@moq/watch); other publishers (moq pub --media) can join through A
//     (go run ./examples/video, then open the printed URLs).
//   - nat: two peers behind NATs (Linux network namespaces with iptables
//     MASQUERADE, as root) reach each other through a relay, hole-punch and
//     stream on the direct path; with -symmetric, punching fails and the
//     relay's unlimited circuit carries the media (sudo go run ./examples/nat).
//
// Run without flags, each runs all its peers in one process and finishes by
// itself (clock and discovery after -n ticks); with -role, its peers run in
// separate processes (see each program's doc comment). The examples stay on
// this machine: their peers advertise and accept loopback addresses only
// (nat's live in namespaces with no route out).
//
// The test in this directory builds every example and runs it as a user
// would.
package examples
