package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/stratalog/strata/cluster/mux"
)

// FaultNet breaks the raft traffic between the nodes of a test cluster that
// runs in one process, as hashicorp/raft's in-memory transport lets its
// tests do: a test cuts links (a node isolated, a minority split from a
// majority, links that flap), delays them, breaks connections at random or
// stalls every byte to and from a node (a paused process, as the network
// sees it). Nodes share one FaultNet through NodeConfig.Faults; each node's
// mux registers its address, and every connection a node dials goes
// through the FaultNet.
//
// Only dialled connections are wrapped: raft's transport sends a request
// and reads its answer on the connection it dialled, so the dialling side
// sees both directions. Writes are checked against the link from the
// dialler to the peer, reads against the link back.
//
// A FaultNet is for tests: production nodes have none (NodeConfig.Faults
// nil), and then the mux dials plain TCP. It changes only the network; the
// nodes' code runs unmodified.
type FaultNet struct {
	mu     sync.Mutex
	cond   *sync.Cond // broadcast when a link heals or a stall ends
	ids    map[string]string
	links  map[faultLink]LinkFault
	stalls map[string]bool
	conns  map[*faultConn]struct{}
	rnd    *rand.Rand
	// Broken counts connections the FaultNet broke (cut or dropped).
	broken int
}

type faultLink struct{ from, to string }

// LinkFault is what happens to the traffic from one node to another.
type LinkFault struct {
	// Cut refuses dials and breaks the connections of the link.
	Cut bool
	// Delay holds every write (and every read of an answer) this long.
	Delay time.Duration
	// DropRate is the chance (0..1) that a write breaks its connection
	// instead of being sent: the peer sees the connection reset, as after
	// a lost segment that TCP gave up on.
	DropRate float64
}

// ErrLinkCut is what a dial or a write over a cut link returns.
var ErrLinkCut = errors.New("cluster: link cut by the test network")

// attach routes the connections m dials through f, as node id (Node does
// it for NodeConfig.Faults).
func (f *FaultNet) attach(m *mux.Mux, id string) {
	f.register(id, m.Addr().String())
	m.WrapDial(func(addr string, dial func() (net.Conn, error)) (net.Conn, error) { return f.dial(id, addr, dial) })
}

// NewFaultNet returns a FaultNet with every link healthy; seed makes its
// random drops repeatable.
func NewFaultNet(seed uint64) *FaultNet {
	f := &FaultNet{
		ids:    map[string]string{},
		links:  map[faultLink]LinkFault{},
		stalls: map[string]bool{},
		conns:  map[*faultConn]struct{}{},
		rnd:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// register maps a node's raft address to its id.
func (f *FaultNet) register(id, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids[addr] = id
}

// Set replaces the fault of the link from one node to another and breaks
// the connections that a cut now forbids.
func (f *FaultNet) Set(from, to string, lf LinkFault) {
	f.mu.Lock()
	if lf == (LinkFault{}) {
		delete(f.links, faultLink{from, to})
	} else {
		f.links[faultLink{from, to}] = lf
	}
	victims := f.cutConnsLocked()
	f.cond.Broadcast()
	f.mu.Unlock()
	closeAll(victims)
}

// Cut cuts the links between a and b, both ways.
func (f *FaultNet) Cut(a, b string) {
	f.update(func() {
		f.setCutLocked(a, b)
		f.setCutLocked(b, a)
	})
}

// Isolate cuts every link between id and the other registered nodes.
func (f *FaultNet) Isolate(id string) {
	f.update(func() {
		for _, other := range f.idsLocked() {
			if other != id {
				f.setCutLocked(id, other)
				f.setCutLocked(other, id)
			}
		}
	})
}

// Partition cuts every link between nodes of different sides; nodes not
// named keep all their links.
func (f *FaultNet) Partition(sides ...[]string) {
	f.update(func() {
		for i, a := range sides {
			for j, b := range sides {
				if i == j {
					continue
				}
				for _, x := range a {
					for _, y := range b {
						f.setCutLocked(x, y)
					}
				}
			}
		}
	})
}

// Stall holds every byte to and from id until Unstall (or Heal): the
// network's view of a paused process. Connections stay open.
func (f *FaultNet) Stall(id string) {
	f.update(func() { f.stalls[id] = true })
}

// Unstall lets the traffic of id through again.
func (f *FaultNet) Unstall(id string) {
	f.update(func() { delete(f.stalls, id) })
}

// Heal removes every fault.
func (f *FaultNet) Heal() {
	f.update(func() {
		clear(f.links)
		clear(f.stalls)
	})
}

// Broken returns how many connections the FaultNet has broken.
func (f *FaultNet) Broken() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broken
}

func (f *FaultNet) update(fn func()) {
	f.mu.Lock()
	fn()
	victims := f.cutConnsLocked()
	f.cond.Broadcast()
	f.mu.Unlock()
	closeAll(victims)
}

// Caller must hold f.mu.
func (f *FaultNet) setCutLocked(from, to string) {
	lf := f.links[faultLink{from, to}]
	lf.Cut = true
	f.links[faultLink{from, to}] = lf
}

// Caller must hold f.mu.
func (f *FaultNet) idsLocked() []string {
	out := make([]string, 0, len(f.ids))
	for _, id := range f.ids {
		out = append(out, id)
	}
	return out
}

// cutConnsLocked removes and returns the connections over a cut link, for
// the caller to close once it released f.mu. Caller must hold f.mu.
func (f *FaultNet) cutConnsLocked() []*faultConn {
	var out []*faultConn
	for c := range f.conns {
		if f.links[faultLink{c.from, c.to}].Cut || f.links[faultLink{c.to, c.from}].Cut {
			delete(f.conns, c)
			f.broken++
			out = append(out, c)
		}
	}
	return out
}

func closeAll(cs []*faultConn) {
	for _, c := range cs {
		_ = c.Conn.Close() // the peer sees the connection reset
	}
}

// dial connects from node from to the raft address addr through the
// FaultNet.
func (f *FaultNet) dial(from, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
	f.mu.Lock()
	to, ok := f.ids[addr]
	if !ok {
		to = addr
	}
	cut := f.links[faultLink{from, to}].Cut || f.links[faultLink{to, from}].Cut
	f.mu.Unlock()
	if cut {
		return nil, fmt.Errorf("dial %s from %s: %w", to, from, ErrLinkCut)
	}
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	c := &faultConn{Conn: conn, f: f, from: from, to: to}
	f.mu.Lock()
	f.conns[c] = struct{}{}
	victims := f.cutConnsLocked() // a cut set while dialling
	f.mu.Unlock()
	closeAll(victims)
	return c, nil
}

// pass waits while the traffic from one node to another is stalled and
// then applies the link's fault. It returns an error when the connection
// is to break.
func (f *FaultNet) pass(c *faultConn, from, to string, write bool) error {
	f.mu.Lock()
	for (f.stalls[from] || f.stalls[to]) && !f.links[faultLink{from, to}].Cut && !c.isClosed() {
		f.cond.Wait()
	}
	lf := f.links[faultLink{from, to}]
	drop := write && lf.DropRate > 0 && f.rnd.Float64() < lf.DropRate
	if drop || lf.Cut {
		if _, ok := f.conns[c]; ok {
			delete(f.conns, c)
			f.broken++
		}
	}
	f.mu.Unlock()
	switch {
	case lf.Cut:
		_ = c.Conn.Close()
		return ErrLinkCut
	case drop:
		_ = c.Conn.Close()
		return fmt.Errorf("write to %s: %w (dropped)", to, ErrLinkCut)
	}
	if lf.Delay > 0 {
		time.Sleep(lf.Delay)
	}
	return nil
}

// faultConn is a dialled connection under a FaultNet.
type faultConn struct {
	net.Conn
	f        *FaultNet
	from, to string

	closeMu sync.Mutex
	closed  bool
}

func (c *faultConn) Write(b []byte) (int, error) {
	if err := c.f.pass(c, c.from, c.to, true); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if perr := c.f.pass(c, c.to, c.from, false); perr != nil {
			return 0, perr
		}
	}
	return n, err
}

func (c *faultConn) isClosed() bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closed
}

// Close closes the connection and wakes a write stalled on it.
func (c *faultConn) Close() error {
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.cond.Broadcast()
	c.f.mu.Unlock()
	return c.Conn.Close()
}
