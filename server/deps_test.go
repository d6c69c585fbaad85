package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// depsRig runs scripts/deps.sh hermetically: PATH holds only stubs made
// here (apt-get records its arguments and "installs" nodejs and npm as
// stubs in the same directory; it never runs the real apt-get).
type depsRig struct {
	t                           *testing.T
	bin, aptLog, npmLog         string
	chromium, browserDir, tsDir string
}

func newDepsRig(t *testing.T, uid string, chromium bool) *depsRig {
	t.Helper()
	dir := t.TempDir()
	r := &depsRig{
		t:          t,
		bin:        filepath.Join(dir, "bin"),
		aptLog:     filepath.Join(dir, "apt.log"),
		npmLog:     filepath.Join(dir, "npm.log"),
		chromium:   filepath.Join(dir, "chromium"),
		browserDir: filepath.Join(dir, "browser"),
		tsDir:      filepath.Join(dir, "tsclient"),
	}
	for _, d := range []string{r.bin, r.browserDir, r.tsDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if chromium {
		r.stub(r.chromium, "exit 0\n")
	}
	r.stub(filepath.Join(r.bin, "id"), "echo "+uid+"\n")
	r.stub(filepath.Join(r.bin, "redis-server"), "exit 0\n")
	node := "#!/bin/sh\necho v20.11.0\n"
	npm := "#!/bin/sh\necho \"$PWD $@\" >> " + r.npmLog + "\n/bin/mkdir -p node_modules/playwright-core node_modules/@modelcontextprotocol/sdk && echo {} > node_modules/playwright-core/package.json && echo {} > node_modules/@modelcontextprotocol/sdk/package.json\n"
	r.stub(filepath.Join(r.bin, "apt-get"), `echo "$@" >> `+r.aptLog+`
for a in "$@"; do
	case "$a" in
	nodejs) printf '%s' '`+node+`' > `+filepath.Join(r.bin, "node")+` && /bin/chmod +x `+filepath.Join(r.bin, "node")+` ;;
	npm) printf '%s' '`+npm+`' > `+filepath.Join(r.bin, "npm")+` && /bin/chmod +x `+filepath.Join(r.bin, "npm")+` ;;
	chromium) exit 100 ;;
	esac
done
exit 0
`)
	return r
}

func (r *depsRig) stub(path, body string) {
	r.t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// run runs deps.sh and returns its combined output and exit error.
func (r *depsRig) run() (string, error) {
	r.t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		r.t.Skip("no bash")
	}
	cmd := exec.Command(bash, filepath.Join("..", "scripts", "deps.sh"), r.chromium, r.browserDir, r.tsDir)
	cmd.Env = []string{"PATH=" + r.bin, "HOME=" + r.t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestDepsInstallsNodeWhenChromiumIsThere: with chromium installed but no
// node or npm, deps.sh (as root) asks apt-get for nodejs and npm, then runs
// npm ci for the TypeScript client and the browser test, and claims no skip.
func TestDepsInstallsNodeWhenChromiumIsThere(t *testing.T) {
	r := newDepsRig(t, "0", true)
	out, err := r.run()
	apt := readOrEmpty(r.aptLog)
	if err != nil || !strings.Contains(apt, "install -y -qq nodejs") || !strings.Contains(apt, "install -y -qq npm") {
		t.Fatalf("deps.sh: err %v; apt-get calls:\n%s\noutput:\n%s", err, apt, out)
	}
	npm := readOrEmpty(r.npmLog)
	for _, dir := range []string{r.tsDir, r.browserDir} {
		if !strings.Contains(npm, dir+" ci") {
			t.Fatalf("npm ci did not run in %s (calls %q); output:\n%s", dir, npm, out)
		}
	}
	if strings.Contains(out, "skip") {
		t.Fatalf("deps.sh claims a skip with chromium installed:\n%s", out)
	}
}

// TestDepsWithoutRootFailsClearly: chromium installed, no node, and no way
// to install it: deps.sh fails naming what is missing and that the browser
// test would fail, never that it will skip.
func TestDepsWithoutRootFailsClearly(t *testing.T) {
	r := newDepsRig(t, "1000", true)
	out, err := r.run()
	if err == nil || !strings.Contains(out, "nodejs") || !strings.Contains(out, "npm") || !strings.Contains(out, "will fail") || strings.Contains(out, "skip") {
		t.Fatalf("deps.sh without root: err %v, output:\n%s", err, out)
	}
	if apt := readOrEmpty(r.aptLog); apt != "" {
		t.Fatalf("apt-get ran without root: %s", apt)
	}
}

// TestDepsWithoutChromiumSkipsHonestly: when chromium cannot be installed
// the browser test skips, as deps.sh says, and its packages are not
// installed; node and the TypeScript client, which other tests need, are.
func TestDepsWithoutChromiumSkipsHonestly(t *testing.T) {
	r := newDepsRig(t, "0", false)
	out, err := r.run()
	apt := readOrEmpty(r.aptLog)
	if err != nil || !strings.Contains(out, "will skip") || !strings.Contains(apt, "install -y -qq chromium") || !strings.Contains(apt, "install -y -qq nodejs") {
		t.Fatalf("deps.sh without chromium: err %v; apt-get calls:\n%s\noutput:\n%s", err, apt, out)
	}
	npm := readOrEmpty(r.npmLog)
	if !strings.Contains(npm, r.tsDir+" ci") || strings.Contains(npm, r.browserDir) {
		t.Fatalf("npm calls %q: want npm ci for the TypeScript client only; output:\n%s", npm, out)
	}
}
