package main

import (
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
)

// moq stats reads a relay's sessions over its https:// listener (HTTP/3,
// pinned like any https:// dial) and over libp2p when it serves them
// (--serve-stats); a node that does not is refused with a hint.
func TestStatsOverHTTPSAndLibp2p(t *testing.T) {
	relay, addrs := startRelay(t, "relay", "--listen", "https://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--serve-stats")
	fp := field(relay.stdout.await(t, relay.name, "fingerprint: ", time.Second))
	start(t, "pub", nil, "pub", "--broadcast", "s", "--connect", addrs["moql"], "--insecure", "--frames", "0", "--rate", "200")
	// The relay's one session, the publisher's, in every answer.
	id := addrs["p2p"][strings.LastIndex(addrs["p2p"], "/")+1:]
	client := regexp.MustCompile(`(?m)^client 127\.0\.0\.1:\d+ +quic +moq-lite-05 `)

	stats := func(name string, args ...string) *proc {
		t.Helper()
		return start(t, name, nil, append([]string{"stats"}, args...)...)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"https pinned", []string{"--fingerprint", fp, addrs["https"]}},
		{"https insecure", []string{"--insecure", addrs["https"]}},
		{"libp2p", []string{addrs["p2p"]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out string
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				p := stats("stats "+tc.name, tc.args...)
				p.mustSucceed(t, 30*time.Second)
				if out = string(p.stdout.bytes()); client.MatchString(out) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("moq stats %v never showed the publisher's session:\n%s", tc.args, out)
				}
			}
			if !strings.HasPrefix(out, "node "+id+": ") {
				t.Errorf("moq stats %v:\n%s", tc.args, out)
			}
		})
	}

	t.Run("https unpinned", func(t *testing.T) {
		p := stats("stats unpinned", addrs["https"])
		if code := p.wait(t, 30*time.Second); code != 1 || !strings.Contains(string(p.stderr.bytes()), "--fingerprint HEX") {
			t.Errorf("moq stats without --fingerprint: exit %d\n%s", code, p.stderr.bytes())
		}
	})
	t.Run("not served", func(t *testing.T) {
		_, other := startRelay(t, "relay without --serve-stats", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
		p := stats("stats refused", other["p2p"])
		if code := p.wait(t, 30*time.Second); code != 1 || !strings.Contains(string(p.stderr.bytes()), "start it with --serve-stats") {
			t.Errorf("moq stats of a node without --serve-stats: exit %d\n%s", code, p.stderr.bytes())
		}
	})

	// A peer that misbehaves gets a reset, in bounded time: a request that
	// never ends (its stream held for the request timeout, a second one
	// of the same peer refused meanwhile), one that is too long.
	t.Run("adversarial", func(t *testing.T) {
		h, err := moq.NewHost(moq.HostConfig{ListenAddrs: []ma.Multiaddr{}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		info, err := peer.AddrInfoFromString(addrs["p2p"])
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if err := h.Connect(ctx, *info); err != nil {
			t.Fatal(err)
		}
		open := func() network.Stream {
			t.Helper()
			s, err := h.NewStream(ctx, info.ID, statsProtocol)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		// read reads s to its end, and reports how long that took.
		read := func(s network.Stream) ([]byte, time.Duration, error) {
			began := time.Now()
			_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, err := io.ReadAll(s)
			return b, time.Since(began), err
		}

		slow := open()
		if _, err := slow.Write([]byte("x")); err != nil { // negotiates the protocol
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the slow request is being served
		second := open()
		_ = second.CloseWrite()
		if _, took, err := read(second); !errors.Is(err, network.ErrReset) || took > 3*time.Second {
			t.Errorf("a second request while one is served: %v after %s, want a reset at once", err, took)
		}
		if _, took, err := read(slow); !errors.Is(err, network.ErrReset) || took < statsRequestTimeout-time.Second || took > statsRequestTimeout+5*time.Second {
			t.Errorf("a request that never ends: %v after %s, want a reset after %s", err, took, statsRequestTimeout)
		}

		time.Sleep(statsPeerInterval)
		long := open()
		began := time.Now()
		_, werr := long.Write(make([]byte, 1<<20))
		_, _, err = read(long)
		if !errors.Is(err, network.ErrReset) || time.Since(began) > 3*time.Second {
			t.Errorf("a request of 1 MiB: write %v, read %v after %s, want a reset at once", werr, err, time.Since(began))
		}

		// A well-formed request is answered still.
		time.Sleep(statsPeerInterval)
		s := open()
		_ = s.CloseWrite()
		body, _, err := read(s)
		var doc server.NodeStats
		if err != nil || json.Unmarshal(body, &doc) != nil || doc.Peer != id {
			t.Errorf("request after the others: %v, %q", err, body)
		}
	})
}
