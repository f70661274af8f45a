//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Impairment is what the link between a Link's two namespaces does to each
// packet, in each direction: a fixed delay and independent random loss, the
// two things tc's netem is commonly used for. The link does them itself, as
// the router between the namespaces, because netem is not built into every
// kernel (Firecracker's, for one).
type Impairment struct {
	Delay time.Duration // one way
	Loss  float64       // probability that a packet is dropped, 0 to 1
}

// Link is two network namespaces joined by a routed path that this process
// impairs. Each namespace has one veth to the router (the test's own
// namespace); the router hands every forwarded packet to a TUN device, and
// this process drops or delays it and writes it back. Processes run in a
// namespace with Command.
type Link struct {
	// A and B name the two namespaces; AddrA and AddrB are their IPv4
	// addresses (each reaches the other's through the router).
	A, B         string
	AddrA, AddrB string

	tun      *os.File
	delay    atomic.Int64  // time.Duration
	loss     atomic.Uint64 // math.Float64bits
	dropped  atomic.Uint64
	passed   atomic.Uint64
	queue    chan delayed
	wg       sync.WaitGroup
	closeOne sync.Once

	lossMu   sync.Mutex
	lossRule []string // the iptables rule SetKernelLoss added, if any
	loRule   []string // SetLoopbackLoss's
}

// tunName is the router's TUN device, where every forwarded packet goes.
const tunName = "imp0"

type delayed struct {
	due time.Time
	pkt []byte
}

// queueLimit bounds the packets held for their delay, like netem's limit
// (1000 by default); past it packets are dropped.
const queueLimit = 1000

// routedEnv marks the child process that runs a test as the router.
const routedEnv = "MOQP2P_TEST_ROUTED_NETNS"

// InRouter reports whether this process is the child that Routed started.
func InRouter() bool { return os.Getenv(routedEnv) != "" }

// Routed runs the calling test again in a child process inside new network
// and mount namespaces, which needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN):
// the child's namespace becomes the router of a Link, so nothing of the
// host's network is touched. env is added to the child's environment. In
// the child it builds the Link with the impairment imp and returns it (run
// the test; the Link is torn down when the test ends). In the parent it runs
// the child, relays its output and verdict, and returns nil; if the child
// cannot be started it returns an error.
func Routed(t *testing.T, imp Impairment, env ...string) (*Link, error) {
	if InRouter() {
		l, err := newLink(imp)
		if err != nil {
			t.Fatalf("building the impaired link: %v", err)
		}
		t.Cleanup(l.close)
		return l, nil
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("an impaired link between network namespaces needs root")
	}
	return nil, rerun(t, routedEnv+"=1", "in network namespaces joined by an impaired link", env)
}

// SetImpairment changes what the link does from now on.
func (l *Link) SetImpairment(imp Impairment) {
	l.delay.Store(int64(imp.Delay))
	l.loss.Store(math.Float64bits(imp.Loss))
}

// Counts returns the packets forwarded and dropped so far.
func (l *Link) Counts() (passed, dropped uint64) { return l.passed.Load(), l.dropped.Load() }

// Command returns a command that runs name in namespace ns (l.A or l.B).
func (l *Link) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func newLink(imp Impairment) (l *Link, err error) {
	// Mounts made here (ip netns add binds the namespaces under /run/netns)
	// must not reach the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making mounts private: %w", err)
	}
	id := os.Getpid()
	l = &Link{
		A: fmt.Sprintf("moqtest%d-a", id), B: fmt.Sprintf("moqtest%d-b", id),
		AddrA: "10.77.1.2", AddrB: "10.77.2.2",
		queue: make(chan delayed, queueLimit),
	}
	l.SetImpairment(imp)
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	for _, s := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"} {
		v := "0"
		if strings.HasSuffix(s, "forward") {
			v = "1"
		}
		if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0); err != nil {
			return nil, err
		}
	}
	if l.tun, err = openTUN(tunName); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", tunName, "up"},
		{"netns", "add", l.A},
		{"netns", "add", l.B},
	}
	for i, ns := range []string{l.A, l.B} {
		veth, peer := fmt.Sprintf("v%d", i), fmt.Sprintf("v%d-r", i)
		router, addr := fmt.Sprintf("10.77.%d.1", i+1), fmt.Sprintf("10.77.%d.2", i+1)
		steps = append(steps,
			[]string{"link", "add", veth, "type", "veth", "peer", "name", peer},
			[]string{"link", "set", veth, "netns", ns},
			[]string{"addr", "add", router + "/24", "dev", peer},
			[]string{"link", "set", peer, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", addr + "/24", "dev", veth},
			[]string{"-n", ns, "link", "set", veth, "up"},
			[]string{"-n", ns, "route", "add", "default", "via", router},
			// What arrives from either namespace goes to the TUN device;
			// what this process writes back is routed normally.
			[]string{"rule", "add", "iif", peer, "lookup", "100"},
		)
	}
	steps = append(steps, []string{"route", "add", "default", "dev", tunName, "table", "100"})
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+tunName+"/rp_filter", []byte("0"), 0); err != nil {
		return nil, err
	}
	l.wg.Go(l.read)
	l.wg.Go(l.write)
	return l, nil
}

// openTUN creates the TUN device name (no packet information header). The
// device is attached before the file joins Go's poller: polled unattached,
// it reports an error that would end every read.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// read takes packets off the TUN device, drops some and queues the rest.
func (l *Link) read() {
	defer close(l.queue)
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 65536)
	for {
		n, err := l.tun.Read(buf)
		if err != nil {
			return // closed
		}
		if rng.Float64() < math.Float64frombits(l.loss.Load()) {
			l.dropped.Add(1)
			continue
		}
		d := delayed{due: time.Now().Add(time.Duration(l.delay.Load())), pkt: append([]byte(nil), buf[:n]...)}
		select {
		case l.queue <- d:
		default:
			l.dropped.Add(1) // over the queue limit
		}
	}
}

// write sends each queued packet back in once its delay is over. The delay
// is the same for every packet, so the queue is in due order.
func (l *Link) write() {
	for d := range l.queue {
		if wait := time.Until(d.due); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := l.tun.Write(d.pkt); err != nil {
			continue // the device is gone: the reader ends too
		}
		l.passed.Add(1)
	}
}

func (l *Link) close() {
	l.closeOne.Do(func() {
		for _, ns := range []string{l.A, l.B} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
		if l.tun != nil {
			_ = l.tun.Close()
		}
		l.wg.Wait()
	})
}
