// Package netns lets a test rerun itself inside private user and network
// namespaces whose only interface is loopback with multicast on, so that
// mDNS can be tested without touching the host's network.
package netns
