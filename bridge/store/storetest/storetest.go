// Package storetest is the conformance suite for store.Store backends.
//
// Every backend runs the same suite from its own tests, so that the embedded
// store and the Redis store cannot drift apart in the behaviour the delivery
// paths rely on: ID order, deduplication, principal isolation, leases, acks,
// dead letters, registrations, retention and, where the backend can reopen
// its data, durability.
//
// A backend's test looks like:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t *testing.T, clock *storetest.Clock) store.Store { ... },
//		})
//	}
package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

// Clock is a settable clock for tests. The suite moves it by hand, forward
// and backward, so that leases, nack delays and retention are tested without
// sleeping. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time; pass it as the backend's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d, backward if d is negative.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Harness opens the backend under test.
type Harness struct {
	// Open returns a new, empty store that takes all its time from clock.
	// Run closes the store when the test ends.
	Open func(t *testing.T, clock *Clock) store.Store

	// Reopen, if not nil, closes s and opens the same data again with
	// clock, as a restarted process would. Run closes the returned store.
	// The durability tests are skipped without it.
	Reopen func(t *testing.T, s store.Store, clock *Clock) store.Store
}

// Run runs the conformance suite against h as subtests of t. Each subtest
// opens its own store; subtests run one after another, so a harness may
// reset shared state (a Redis database, say) in Open.
func Run(t *testing.T, h Harness) {
	groups := []struct {
		name  string
		tests []testCase
	}{
		{"Append", appendTests()},
		{"Dedup", dedupTests()},
		{"Read", readTests()},
		{"Isolation", isolationTests()},
		{"Lease", leaseTests()},
		{"Bytes", bytesTests()},
		{"Ack", ackTests()},
		{"Nack", nackTests()},
		{"Requeue", requeueTests()},
		{"Registrations", registrationTests()},
		{"Tokens", tokenTests()},
		{"Subscriptions", subscriptionTests()},
		{"Compact", compactTests()},
		{"Durability", durabilityTests()},
		{"Context", contextTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, newEnv(t, h))
				})
			}
		})
	}
}

// testCase is one subtest; it gets a fresh, empty store.
type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}
