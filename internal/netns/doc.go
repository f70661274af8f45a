// Package netns lets a test rerun itself inside a private network namespace
// (plus a user namespace when not root) whose only interface is loopback with
// multicast on, so that mDNS can be tested without touching the host's
// network. Where no namespace can be made the test is skipped, or fails when
// RequireEnv is set (CI sets it).
package netns
