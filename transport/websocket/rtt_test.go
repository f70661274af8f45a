package websocket

import (
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// A WebSocket connection's Stats carry an RTT measured by its pings (ours
// and the keep-alives'): over a proxy that delays each direction by 25 ms,
// the minimum is 50 ms within 20 %, and the smoothed RTT and the latest
// sample are at least that.
func TestStatsRTTFromPings(t *testing.T) {
	ts := newTestServer(t, nil)
	proxy, err := impair.NewTCPProxy(strings.TrimPrefix(ts.URL, "http://"), impair.Config{Delay: 25 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	client, err := Dial(testCtx(t), "ws://"+proxy.Addr().String()+"/moq", &Config{Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseWithError(0, "")
	_ = ts.next(t)
	for range 5 {
		if err := client.Ping(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	st := client.Stats()
	const want = 50 * time.Millisecond
	if st.MinRTT < want*8/10 || st.MinRTT > want*12/10 {
		t.Errorf("min RTT %v, want %v ± 20 %%", st.MinRTT, want)
	}
	if st.RTT < st.MinRTT || st.LatestRTT < st.MinRTT {
		t.Errorf("smoothed %v, latest %v: below the minimum %v", st.RTT, st.LatestRTT, st.MinRTT)
	}
	t.Logf("RTT %v (min %v, latest %v, var %v)", st.RTT, st.MinRTT, st.LatestRTT, st.RTTVar)
}
