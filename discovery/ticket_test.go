package discovery_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/discovery"
)

func newPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sameTicket(a, b discovery.Ticket) bool {
	if a.Peer != b.Peer || a.Broadcast != b.Broadcast || len(a.Addrs) != len(b.Addrs) {
		return false
	}
	for i := range a.Addrs {
		if !a.Addrs[i].Equal(b.Addrs[i]) {
			return false
		}
	}
	return true
}

// shellSafe: a ticket must survive a shell, a URL and a chat client as one
// word.
func shellSafe(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~/%", c)) {
			return false
		}
	}
	return true
}

func TestTicketRoundTrip(t *testing.T) {
	id := newPeerID(t)
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1"),
		ma.StringCast("/ip6/::1/tcp/4001"),
		ma.StringCast("/dns4/example.com/udp/443/quic-v1/p2p/" + id.String()),
	}
	cases := []struct {
		name  string
		t     discovery.Ticket
		short bool
	}{
		{"short", discovery.Ticket{Peer: id, Broadcast: "cam"}, true},
		{"path", discovery.Ticket{Peer: id, Broadcast: "room/alice/cam"}, true},
		{"odd characters", discovery.Ticket{Peer: id, Broadcast: "a b?c&d=e%f#g+h:ü/\x00"}, true},
		{"with addresses", discovery.Ticket{Peer: id, Broadcast: "room/cam", Addrs: addrs}, false},
		{"one address, odd name", discovery.Ticket{Peer: id, Broadcast: "x/y?z", Addrs: addrs[:1]}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.t.String()
			if !shellSafe(s) {
				t.Errorf("%q is not one shell- and URL-safe word", s)
			}
			if got := strings.HasPrefix(s, id.String()+"/"); got != c.short {
				t.Errorf("%q: short form %v, want %v", s, got, c.short)
			}
			p, err := discovery.ParseTicket(s)
			if err != nil {
				t.Fatalf("ParseTicket(%q): %v", s, err)
			}
			if !sameTicket(p, c.t) {
				t.Fatalf("ParseTicket(%q) = %+v, want %+v", s, p, c.t)
			}
			// Upper case (QR codes) and surrounding white space are accepted
			// for the base32 form.
			if !c.short {
				p, err := discovery.ParseTicket(" " + strings.ToUpper(s) + "\n")
				if err != nil || !sameTicket(p, c.t) {
					t.Fatalf("upper case: %+v, %v", p, err)
				}
			}
			// Text marshalling (flags, JSON).
			j, err := json.Marshal(c.t)
			if err != nil {
				t.Fatal(err)
			}
			var back discovery.Ticket
			if err := json.Unmarshal(j, &back); err != nil || !sameTicket(back, c.t) {
				t.Fatalf("JSON %s: %+v, %v", j, back, err)
			}
		})
	}
	tk := discovery.Ticket{Peer: id, Broadcast: "/cam/", Addrs: addrs}
	if s := tk.Short().String(); s != id.String()+"/cam" {
		t.Errorf("Short().String() = %q, want <peer-id>/cam", s)
	}
	if ai := tk.AddrInfo(); ai.ID != id || len(ai.Addrs) != len(addrs) {
		t.Errorf("AddrInfo = %v", ai)
	}
}

func TestParseTicketErrors(t *testing.T) {
	id := newPeerID(t).String()
	long := discovery.Ticket{Peer: newPeerID(t), Broadcast: strings.Repeat("x", discovery.MaxTicketLen)}
	for _, s := range []string{
		"",
		"cam",
		id,
		id + "/",
		id + "///",
		"notapeer/cam",
		id + "/bad%zzescape",
		"moq",
		"moq!!!",
		"moqaaaa",         // version 0, then a truncated peer ID
		"moqae",           // version 1
		"moq" + "aaaaaaa", // zero-length fields
		long.String(),
		id + "/" + strings.Repeat("\xb2", 1400), // short, but 4200 bytes once percent-encoded
	} {
		if tk, err := discovery.ParseTicket(s); !errors.Is(err, discovery.ErrInvalidTicket) {
			t.Errorf("ParseTicket(%.60q) = %+v, %v; want ErrInvalidTicket", s, tk, err)
		}
	}
}

// FuzzParseTicket: ParseTicket never panics, and what it accepts prints to
// a canonical text that parses back to the same ticket.
func FuzzParseTicket(f *testing.F) {
	id := newPeerID(f)
	f.Add(id.String() + "/cam")
	f.Add(id.String() + "/room/a%20b")
	f.Add(discovery.Ticket{Peer: id, Broadcast: "cam", Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/1/quic-v1")}}.String())
	f.Add("moqaaaa")
	f.Add(id.String() + "/" + strings.Repeat("\xb2", 1400))
	f.Add("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/x")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := discovery.ParseTicket(s)
		if err != nil {
			if !errors.Is(err, discovery.ErrInvalidTicket) {
				t.Fatalf("error %v does not match ErrInvalidTicket", err)
			}
			return
		}
		text := tk.String()
		back, err := discovery.ParseTicket(text)
		if err != nil {
			t.Fatalf("ParseTicket(%q) = %+v, but its String %q does not parse: %v", s, tk, text, err)
		}
		if !sameTicket(tk, back) {
			t.Fatalf("round trip changed the ticket: %+v → %q → %+v", tk, text, back)
		}
		if again := back.String(); again != text {
			t.Fatalf("String is not canonical: %q then %q", text, again)
		}
	})
}
