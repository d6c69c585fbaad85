package clients

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestTrackerWatermark: Last never passes an event still in flight, even
// when later ones complete first, and moves over them once it completes.
func TestTrackerWatermark(t *testing.T) {
	tr := newTracker(Progress{Last: "5-0"})
	for _, id := range []string{"6-0", "7-0", "8-0"} {
		tr.given(id)
	}
	tr.complete("7-0")
	tr.complete("8-0")
	if p, _ := tr.progress(); p.Last != "5-0" {
		t.Fatalf("Last = %s with 6-0 in flight, want 5-0", p.Last)
	}
	if !tr.completed("8-0") || tr.completed("6-0") {
		t.Fatal("completed() does not match what completed")
	}
	tr.complete("6-0")
	if p, _ := tr.progress(); p.Last != "8-0" || !slices.Equal(p.Recent, []string{"7-0", "8-0", "6-0"}) {
		t.Fatalf("after 6-0: %+v, want Last 8-0 and all three recent", p)
	}
	// IDs compare as numbers, not strings.
	tr.given("10-0")
	tr.given("9-0")
	tr.complete("10-0")
	if p, _ := tr.progress(); p.Last != "8-0" {
		t.Fatalf("Last = %s with 9-0 in flight, want 8-0", p.Last)
	}
	tr.complete("9-0")
	if p, _ := tr.progress(); p.Last != "10-0" {
		t.Fatalf("Last = %s, want 10-0", p.Last)
	}
}

// TestTrackerRecentIsBounded: the checkpoint keeps at most RecentIDs.
func TestTrackerRecentIsBounded(t *testing.T) {
	tr := newTracker(Progress{})
	for i := range RecentIDs + 10 {
		id := fmt.Sprintf("%d-0", i+1)
		tr.given(id)
		tr.complete(id)
	}
	p, _ := tr.progress()
	if len(p.Recent) != RecentIDs || p.Recent[0] != "11-0" || tr.completed("10-0") {
		t.Fatalf("recent holds %d from %s; want the last %d", len(p.Recent), p.Recent[0], RecentIDs)
	}
	if p.Last != fmt.Sprintf("%d-0", RecentIDs+10) {
		t.Fatalf("Last = %s", p.Last)
	}
}

// TestFileCheckpoint: a missing file is no progress; a save replaces the
// file whole and leaves no temporary file behind.
func TestFileCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cp := FileCheckpoint(filepath.Join(dir, "agent.json"))
	ctx := context.Background()
	if p, err := cp.Load(ctx); err != nil || p.Last != "" || len(p.Recent) != 0 {
		t.Fatalf("missing file: %+v, %v", p, err)
	}
	for _, last := range []string{"1-0", "2-5"} {
		if err := cp.Save(ctx, Progress{Last: last, Recent: []string{last}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := cp.Load(ctx)
	if err != nil || p.Last != "2-5" || !slices.Equal(p.Recent, []string{"2-5"}) {
		t.Fatalf("loaded %+v, %v", p, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the checkpoint", len(entries))
	}
	if err := os.WriteFile(string(cp), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Load(ctx); err == nil {
		t.Fatal("a corrupt checkpoint loaded without error")
	}
}
