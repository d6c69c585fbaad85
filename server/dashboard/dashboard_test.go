package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAssetsServed: the page at / and each asset under /ui/ come with the
// right content type, an ETag that revalidates, no-cache and the CSP.
func TestAssetsServed(t *testing.T) {
	h := Handler()
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", "<title>hookgate dashboard</title>"},
		{"/ui/dashboard.js", "text/javascript; charset=utf-8", "hookgate.bearer"},
		{"/ui/dashboard.css", "text/css; charset=utf-8", ":focus-visible"},
	} {
		resp := get(t, h, http.MethodGet, tc.path, nil)
		text := body(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(text, tc.contains) {
			t.Errorf("GET %s lacks %q", tc.path, tc.contains)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("GET %s: no %s", tc.path, h)
			}
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", tc.path)
		}
		again := get(t, h, http.MethodGet, tc.path, http.Header{"If-None-Match": {etag}})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, again.StatusCode)
		}
	}
	if csp := get(t, h, http.MethodGet, "/", nil).Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'none'") {
		t.Errorf("CSP %q does not forbid form submission (the token form must never submit)", csp)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/ui/", "/ui/nope.js", "/index.html", "/ui/../dashboard.go", "/favicon.ico"} {
		if resp := get(t, h, http.MethodGet, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp := get(t, h, http.MethodPost, "/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
	if resp := get(t, h, http.MethodHead, "/ui/dashboard.js", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /ui/dashboard.js: %d, want 200", resp.StatusCode)
	}
}

// TestIndexAccessible checks the page's markup for what assistive
// technology and keyboard users need, and that it loads nothing from
// elsewhere.
func TestIndexAccessible(t *testing.T) {
	page := body(t, get(t, Handler(), http.MethodGet, "/", nil))
	for _, want := range []string{
		`<html lang="en">`,
		`<meta name="viewport"`,
		`<label for="token">Bearer token</label>`,
		`id="token" name="token" type="password"`,
		`<label for="window">Window</label>`,
		`<label for="chart-label">Webhook</label>`,
		`<caption`,
		`scope="col"`,
		`role="log" aria-live="polite"`,
		`role="alert"`,
		`role="img" aria-labelledby="chart-h chart-desc"`,
		`class="skip" href="#main"`,
		`<script src="/ui/dashboard.js" defer></script>`,
		`<link rel="stylesheet" href="/ui/dashboard.css">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	// Every input and select has a label.
	for _, m := range regexp.MustCompile(`<(?:input|select)[^>]*\bid="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("control #%s has no <label for>", m[1])
		}
	}
	// The column headers the browser test and readers rely on.
	for _, h := range []string{"Pending", "Accepted", "Duplicates", "Bad signatures", "Acked", "Nacked",
		"Lease expired", "Dead letters", "Expired unacked", "Delivery latency", "Processing latency", "Drop rate", "Action success rate"} {
		if !strings.Contains(page, ">"+h+"<") && !strings.Contains(page, ">"+h+" <") {
			t.Errorf("index.html has no column header %q", h)
		}
	}
	// Nothing from other origins, and no inline script or style (the CSP forbids them).
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(page) {
		t.Error("index.html loads something from another origin")
	}
	if regexp.MustCompile(`(?i)<script>|<style|\sstyle="|\son[a-z]+="`).MatchString(page) {
		t.Error("index.html has inline script or style, which the CSP blocks")
	}
}

// TestNoTokenInURLs: the script sends the token only as a header or a
// WebSocket subprotocol, and keeps it in sessionStorage, never localStorage.
func TestNoTokenInURLs(t *testing.T) {
	js := body(t, get(t, Handler(), http.MethodGet, "/ui/dashboard.js", nil))
	for _, want := range []string{"sessionStorage", "Authorization: 'Bearer ' + token", "['hookgate.bearer', token]"} {
		if !strings.Contains(js, want) {
			t.Errorf("dashboard.js lacks %s", want)
		}
	}
	if strings.Contains(js, "localStorage") || regexp.MustCompile(`[?&]token=`).MatchString(js) {
		t.Error("dashboard.js keeps the token in localStorage or puts it in a URL")
	}
}
