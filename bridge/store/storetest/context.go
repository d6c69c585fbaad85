package storetest

import (
	"context"
	"testing"

	"github.com/hookgate/hookgate/bridge/store"
)

func contextTests() []testCase {
	return []testCase{
		{"Cancelled", testCancelled},
		{"Ping", testPing},
	}
}

// testCancelled calls every method with a context cancelled beforehand:
// each must fail, and Append must store nothing.
func testCancelled(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	id := e.appendN(r, 1)[0]
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()

	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := e.s.Append(ctx, e.event(r, "evt_cancelled")); return err }},
		{"Read", func() error { _, err := e.s.Read(ctx, alice, store.Query{}); return err }},
		{"ReadPending", func() error { _, err := e.s.ReadPending(ctx, alice, store.Query{}); return err }},
		{"Get", func() error { _, err := e.s.Get(ctx, alice, id); return err }},
		{"Lease", func() error { _, err := e.s.Lease(ctx, alice, store.LeaseQuery{}); return err }},
		{"Ack", func() error { _, err := e.s.Ack(ctx, alice, []store.ID{id}); return err }},
		{"Nack", func() error { _, err := e.s.Nack(ctx, alice, id, 0, ""); return err }},
		{"Pending", func() error { _, err := e.s.Pending(ctx, alice, ""); return err }},
		{"DeadLetters", func() error { _, err := e.s.DeadLetters(ctx, alice, store.Query{}); return err }},
		{"PutRegistration", func() error {
			return e.s.PutRegistration(ctx, store.Registration{ID: "reg-cancelled", Principal: alice, Label: "cancelled"})
		}},
		{"Registration", func() error { _, err := e.s.Registration(ctx, r.ID); return err }},
		{"RegistrationByLabel", func() error { _, err := e.s.RegistrationByLabel(ctx, alice, r.Label); return err }},
		{"Registrations", func() error { _, err := e.s.Registrations(ctx, alice); return err }},
		{"DeleteRegistration", func() error { return e.s.DeleteRegistration(ctx, alice, r.Label) }},
		{"PutToken", func() error { return e.s.PutToken(ctx, store.Token{Hash: "ffff", Principal: alice}) }},
		{"TokenByHash", func() error { _, err := e.s.TokenByHash(ctx, "ffff"); return err }},
		{"Tokens", func() error { _, err := e.s.Tokens(ctx); return err }},
		{"DeleteToken", func() error { return e.s.DeleteToken(ctx, "ffff") }},
		{"Compact", func() error { _, err := e.s.Compact(ctx); return err }},
		{"Ping", func() error { return e.s.Ping(ctx) }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil {
			t.Errorf("%s with a cancelled context succeeded", c.name)
		}
	}

	wantIDs(t, "Read after a cancelled Append", e.readAll(alice, ""), []store.ID{id})
	e.wantPending(alice, "", 1)
	if _, err := e.s.RegistrationByLabel(e.ctx, alice, r.Label); err != nil {
		t.Errorf("registration after a cancelled delete: %v", err)
	}
	if _, err := e.s.Registration(e.ctx, "reg-cancelled"); err == nil {
		t.Errorf("PutRegistration with a cancelled context stored the registration")
	}
}

func testPing(t *testing.T, e *env) {
	if err := e.s.Ping(e.ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
