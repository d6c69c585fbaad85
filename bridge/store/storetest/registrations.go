package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bridge/store"
)

func registrationTests() []testCase {
	return []testCase{
		{"PutAndGet", testRegistrationPutGet},
		{"ListSortedByLabel", testRegistrationList},
		{"UpdateSecrets", testRegistrationUpdate},
		{"LabelUniquePerPrincipal", testRegistrationLabelUnique},
		{"Delete", testRegistrationDelete},
		{"DeleteUnknown", testRegistrationDeleteUnknown},
		{"Unknown", testRegistrationUnknown},
	}
}

func testRegistrationPutGet(t *testing.T, e *env) {
	r := e.register(alice, "stripe-payment", func(r *store.Registration) {
		r.Provider = "stripe"
		r.Secrets = []string{"whsec_old", "whsec_new"}
		r.VerifyToken = "verify-me"
		r.TTL = 48 * time.Hour
		r.MaxAttempts = 5
	})
	got, err := e.s.Registration(e.ctx, r.ID)
	if err != nil {
		t.Fatalf("Registration: %v", err)
	}
	wantRegistration(t, "Registration", got, r)
	got, err = e.s.RegistrationByLabel(e.ctx, alice, r.Label)
	if err != nil {
		t.Fatalf("RegistrationByLabel: %v", err)
	}
	wantRegistration(t, "RegistrationByLabel", got, r)
}

func testRegistrationList(t *testing.T, e *env) {
	c := e.register(alice, "charlie")
	a := e.register(alice, "alpha")
	b := e.register(alice, "bravo")
	e.register(bob, "aardvark")
	regs, err := e.s.Registrations(e.ctx, alice)
	if err != nil {
		t.Fatalf("Registrations: %v", err)
	}
	want := []store.Registration{a, b, c}
	if len(regs) != len(want) {
		t.Fatalf("Registrations = %+v, want %d of them", regs, len(want))
	}
	for i := range want {
		wantRegistration(t, "Registrations", regs[i], want[i])
	}
	none, err := e.s.Registrations(e.ctx, "carol")
	if err != nil || len(none) != 0 {
		t.Errorf("Registrations of a principal with none = %+v, %v; want none", none, err)
	}
}

func testRegistrationUpdate(t *testing.T, e *env) {
	r := e.register(alice, "hooks")
	r.Secrets = append(r.Secrets, "whsec_second")
	if err := e.s.PutRegistration(e.ctx, r); err != nil {
		t.Fatalf("PutRegistration (update): %v", err)
	}
	got, err := e.s.RegistrationByLabel(e.ctx, alice, "hooks")
	if err != nil {
		t.Fatalf("RegistrationByLabel: %v", err)
	}
	wantRegistration(t, "updated registration", got, r)
	if regs, _ := e.s.Registrations(e.ctx, alice); len(regs) != 1 {
		t.Errorf("Registrations after an update = %+v, want one", regs)
	}
}

func testRegistrationLabelUnique(t *testing.T, e *env) {
	first := e.register(alice, "hooks")
	clash := first
	clash.ID = "reg-clash"
	if err := e.s.PutRegistration(e.ctx, clash); err == nil {
		t.Fatalf("PutRegistration of a second live registration with label %q succeeded", clash.Label)
	}
	_, err := e.s.Registration(e.ctx, clash.ID)
	wantErrIs(t, "Registration of the refused one", err, store.ErrNotFound)
	got, err := e.s.RegistrationByLabel(e.ctx, alice, "hooks")
	if err != nil {
		t.Fatalf("RegistrationByLabel: %v", err)
	}
	wantRegistration(t, "label holder", got, first)

	other := e.register(bob, "hooks")
	got, err = e.s.RegistrationByLabel(e.ctx, bob, "hooks")
	if err != nil {
		t.Fatalf("RegistrationByLabel(bob): %v", err)
	}
	wantRegistration(t, "bob's registration with the same label", got, other)
}

func testRegistrationDelete(t *testing.T, e *env) {
	old := e.register(alice, "hooks")
	kept := e.register(alice, "kept")
	oldIDs := e.appendN(old, 3)
	keptIDs := e.appendN(kept, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "hooks", Limit: 1}, oldIDs[:1], 2)

	e.clock.Advance(time.Second)
	if err := e.s.DeleteRegistration(e.ctx, alice, "hooks"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	got, err := e.s.Registration(e.ctx, old.ID)
	if err != nil {
		t.Fatalf("Registration of a deleted one: %v", err)
	}
	if !got.Deleted || got.DeletedAt.IsZero() || got.Label != "hooks" {
		t.Errorf("deleted registration = %+v, want Deleted, DeletedAt set, label kept", got)
	}
	_, err = e.s.RegistrationByLabel(e.ctx, alice, "hooks")
	wantErrIs(t, "RegistrationByLabel of a deleted label", err, store.ErrNotFound)
	regs, err := e.s.Registrations(e.ctx, alice)
	if err != nil || len(regs) != 1 || regs[0].ID != kept.ID {
		t.Errorf("Registrations after delete = %+v, %v; want only %s", regs, err, kept.ID)
	}
	e.wantPending(alice, "hooks", 0)
	e.wantPending(alice, "", 1)
	e.clock.Advance(store.DefaultLease + time.Second)
	e.wantLease(alice, store.LeaseQuery{}, keptIDs, 0)

	again := e.register(alice, "hooks")
	if again.ID == old.ID {
		t.Fatalf("test bug: re-registration reuses ID %s", old.ID)
	}
	got, err = e.s.RegistrationByLabel(e.ctx, alice, "hooks")
	if err != nil {
		t.Fatalf("RegistrationByLabel after re-registering: %v", err)
	}
	wantRegistration(t, "re-registered label", got, again)
	newIDs := e.appendN(again, 1)
	e.wantLease(alice, store.LeaseQuery{Label: "hooks"}, newIDs, 0)
	if old, err := e.s.Registration(e.ctx, old.ID); err != nil || !old.Deleted {
		t.Errorf("old registration after re-registering = %+v, %v; want still deleted", old, err)
	}
}

func testRegistrationDeleteUnknown(t *testing.T, e *env) {
	e.register(bob, "hooks")
	err := e.s.DeleteRegistration(e.ctx, alice, "hooks")
	wantErrIs(t, "DeleteRegistration of another principal's label", err, store.ErrNotFound)
	err = e.s.DeleteRegistration(e.ctx, bob, "nope")
	wantErrIs(t, "DeleteRegistration of an unknown label", err, store.ErrNotFound)
	if _, err := e.s.RegistrationByLabel(e.ctx, bob, "hooks"); err != nil {
		t.Errorf("bob's registration after alice's delete: %v", err)
	}
}

func testRegistrationUnknown(t *testing.T, e *env) {
	e.register(alice, "hooks")
	_, err := e.s.Registration(e.ctx, "reg-unknown")
	wantErrIs(t, "Registration of an unknown ID", err, store.ErrNotFound)
	_, err = e.s.RegistrationByLabel(e.ctx, alice, "nope")
	wantErrIs(t, "RegistrationByLabel of an unknown label", err, store.ErrNotFound)
	_, err = e.s.RegistrationByLabel(e.ctx, bob, "hooks")
	wantErrIs(t, "RegistrationByLabel of another principal's label", err, store.ErrNotFound)
}

func tokenTests() []testCase {
	return []testCase{
		{"PutAndLookup", testTokens},
		{"ListAndDelete", testTokenDelete},
	}
}

func testTokens(t *testing.T, e *env) {
	tok := store.Token{
		Hash:      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Principal: alice,
		Name:      "laptop",
		CreatedAt: e.clock.Now(),
	}
	if err := e.s.PutToken(e.ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	got, err := e.s.TokenByHash(e.ctx, tok.Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if got.Hash != tok.Hash || got.Principal != tok.Principal || got.Name != tok.Name || !got.CreatedAt.Equal(tok.CreatedAt) {
		t.Errorf("TokenByHash = %+v, want %+v", got, tok)
	}
	_, err = e.s.TokenByHash(e.ctx, "0000")
	wantErrIs(t, "TokenByHash of an unknown hash", err, store.ErrNotFound)
}

func testTokenDelete(t *testing.T, e *env) {
	if list, err := e.s.Tokens(e.ctx); err != nil || len(list) != 0 {
		t.Fatalf("Tokens of an empty store = %v, %v; want [] and no error", list, err)
	}
	for _, h := range []string{"bbbb", "aaaa", "cccc"} {
		if err := e.s.PutToken(e.ctx, store.Token{Hash: h, Principal: alice, Name: "n-" + h, CreatedAt: e.clock.Now()}); err != nil {
			t.Fatalf("PutToken %s: %v", h, err)
		}
	}
	if err := e.s.DeleteToken(e.ctx, "bbbb"); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	_, err := e.s.TokenByHash(e.ctx, "bbbb")
	wantErrIs(t, "TokenByHash of a deleted token", err, store.ErrNotFound)
	wantErrIs(t, "DeleteToken again", e.s.DeleteToken(e.ctx, "bbbb"), store.ErrNotFound)
	wantErrIs(t, "DeleteToken of an unknown hash", e.s.DeleteToken(e.ctx, "dddd"), store.ErrNotFound)
	if e.h.Reopen != nil {
		e.reopen()
	}
	list, err := e.s.Tokens(e.ctx)
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	var hashes []string
	for _, tok := range list {
		hashes = append(hashes, tok.Hash)
		if tok.Principal != alice || tok.Name != "n-"+tok.Hash {
			t.Errorf("Tokens holds %+v, want its principal and name kept", tok)
		}
	}
	if want := []string{"aaaa", "cccc"}; !slices.Equal(hashes, want) {
		t.Fatalf("Tokens after delete and reopen = %v, want %v in hash order", hashes, want)
	}
}
