// Package dashboard serves hookgate's web dashboard: one page of plain HTML,
// CSS and JavaScript, embedded in the binary, so there is no build step.
//
// The page is public and holds no secrets. The user enters a bearer token
// once; the page keeps it in the tab's sessionStorage and reads everything
// through the authenticated APIs: GET /v1/webhooks (registrations, URLs,
// pending counts), GET /v1/stats (counts and the four numbers, polled every
// 5 s, which also feed the latency chart) and the GET /v1/ws live feed, to
// which a browser, unable to set Authorization on a WebSocket, offers the
// token as the subprotocol pair ["hookgate.bearer", token].
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// AssetPrefix is the path under which the page's assets are served:
// /ui/dashboard.js, /ui/dashboard.css.
const AssetPrefix = "/ui/"

// contentSecurityPolicy allows only the page's own script, style and
// connections (WebSocket included), and no form submission: should the
// script fail to load, the token form cannot send the token in a URL.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are fixed here rather than taken from the system's MIME
// tables, which differ between machines (.js as text/plain on some).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name        string
	data        []byte
	contentType string
	etag        string
}

type handler struct {
	assets map[string]asset // by path below static/, e.g. "index.html"
}

// Handler serves the dashboard: the page at "/" and the files of static/
// under AssetPrefix. Any other path is 404. Responses carry an ETag (so a
// reload revalidates cheaply), Cache-Control: no-cache, and a strict
// Content-Security-Policy.
func Handler() http.Handler {
	h, err := load(static)
	if err != nil {
		panic(err) // the embedded files are fixed at build time
	}
	return h
}

func load(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("dashboard: read %s: %w", p, err)
		}
		name := strings.TrimPrefix(p, "static/")
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			ctype = http.DetectContentType(data)
		}
		sum := sha256.Sum256(data)
		h.assets[name] = asset{name: name, data: data, contentType: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: load embedded assets: %w", err)
	}
	if _, ok := h.assets["index.html"]; !ok {
		return nil, fmt.Errorf("dashboard: no index.html among the embedded assets")
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var name string
	switch {
	case r.URL.Path == "/":
		name = "index.html"
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		name = strings.TrimPrefix(r.URL.Path, AssetPrefix)
	}
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
