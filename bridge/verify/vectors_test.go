package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const vectorsFile = "webhook-signature-vectors.json"

// vector is one entry of the shared signature vectors.
type vector struct {
	Provider string            `json:"provider"`
	Name     string            `json:"name"`
	Secret   string            `json:"secret"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Expect   string            `json:"expect"`
	URL      string            `json:"url"`
	NowUnix  *int64            `json:"now_unix"`
	// Optional expectations; asserted when a vector carries them.
	EventType       *string `json:"event_type"`
	ProviderEventID *string `json:"provider_event_id"`
}

// scheme maps the vector's provider to a scheme name.
func (v vector) scheme() string {
	if v.Provider == "generic-hmac-sha256" {
		return "generic"
	}
	return v.Provider
}

// now is the vector's clock, or testNow for vectors without one (their
// schemes sign no time).
func (v vector) now() time.Time {
	if v.NowUnix != nil {
		return time.Unix(*v.NowUnix, 0)
	}
	return testNow
}

func (v vector) header() http.Header {
	h := http.Header{}
	for k, val := range v.Headers {
		h.Set(k, val)
	}
	return h
}

func (v vector) verify() (Result, error) {
	return Verify(v.scheme(), []string{v.Secret}, v.URL, v.header(), []byte(v.Body), v.now())
}

// vectorsPath finds the shared vectors, which live beside the repository
// (<repo>/../shared/testdata), falling back to the copy in this package's
// testdata so that the tests run, rather than skip, without the sibling.
func vectorsPath(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(dir, "..", "shared", "testdata", vectorsFile)
			if _, err := os.Stat(shared); err == nil {
				return shared
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return filepath.Join("testdata", vectorsFile)
}

func loadVectors(t testing.TB) []vector {
	path := vectorsPath(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s holds no vectors", path)
	}
	return vs
}

func TestVectorsCopyInSync(t *testing.T) {
	path := vectorsPath(t)
	if path == filepath.Join("testdata", vectorsFile) {
		t.Skip("shared vectors not found; using the local copy")
	}
	shared, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile(filepath.Join("testdata", vectorsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, local) {
		t.Errorf("testdata/%s differs from %s; refresh the copy (cp %s testdata/)", vectorsFile, path, path)
	}
}

// vectorWant holds what the shared vectors do not state but the product
// contract fixes: the result of a valid vector, and the error of an
// invalid one.
var vectorWant = map[string]struct {
	res Result
	err error
}{
	"github/docs-published-vector":                       {res: Result{EventType: "ping", ProviderEventID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"}},
	"github/go-github-sha256":                            {},
	"github/go-github-form-encoded-legacy-sha1":          {},
	"github/form-encoded-sha256":                         {},
	"github/docs-vector-tampered-body":                   {err: ErrBadSignature},
	"github/docs-vector-wrong-secret":                    {err: ErrBadSignature},
	"stripe/rolled-secret-two-v1":                        {res: Result{ProviderEventID: "evt_test_webhook", Timestamp: time.Unix(1492774577, 0)}},
	"stripe/unknown-parts-ignored":                       {res: Result{ProviderEventID: "evt_test_webhook", Timestamp: time.Unix(1492774577, 0)}},
	"stripe/v1-too-old":                                  {err: ErrStale},
	"stripe/v0-only-downgrade":                           {err: ErrBadSignature},
	"stripe/missing-timestamp":                           {err: ErrBadSignature},
	"standard-webhooks/spec-lib-vector":                  {res: Result{ProviderEventID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: time.Unix(1614265330, 0)}},
	"standard-webhooks/multi-signature-list":             {res: Result{ProviderEventID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: time.Unix(1614265330, 0)}},
	"standard-webhooks/partial-signature":                {err: ErrBadSignature},
	"standard-webhooks/missing-id-header":                {err: ErrMissingSignature},
	"standard-webhooks/timestamp-too-new":                {err: ErrStale},
	"standard-webhooks/id-in-signed-content":             {err: ErrBadSignature},
	"svix/svix-branded-headers":                          {res: Result{ProviderEventID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: time.Unix(1614265330, 0)}},
	"slack/docs-vector-tampered-body":                    {err: ErrBadSignature},
	"slack/docs-vector-stale":                            {err: ErrStale},
	"shopify/shopify-api-js-vector":                      {res: Result{EventType: "products/create", ProviderEventID: "123456789"}},
	"shopify/hex-instead-of-base64":                      {err: ErrBadSignature},
	"zendesk/static-test-secret-timestamp-plus-body":     {res: Result{EventType: "zen:event-type:user.active_changed", ProviderEventID: "2b24ef10-19d4-4740-93cf-8f98ec4776c0", Timestamp: time.Date(2021, 3, 25, 5, 9, 27, 0, time.UTC), OccurredAt: time.Date(2099, 7, 4, 5, 33, 18, 0, time.UTC)}},
	"zendesk/body-plus-timestamp-order-rejected":         {err: ErrBadSignature},
	"zendesk/legacy-doc-values-resigned-timestamp-first": {res: Result{Timestamp: time.Date(2021, 7, 25, 10, 0, 0, 0, time.UTC)}},
	"twilio/docs-published-vector":                       {res: Result{EventType: "call"}},
	"twilio/twilio-go-7-params":                          {res: Result{EventType: "call"}},
	"twilio/twilio-go-port-in-url-signed-without":        {res: Result{EventType: "call"}},
	"twilio/twilio-go-json-body-bodySHA256":              {},
	"twilio/twilio-go-form-body":                         {},
	"twilio/twilio-go-wrong-sort-order":                  {err: ErrBadSignature},
	"twilio/twilio-go-json-sig-on-form-url":              {err: ErrBadSignature},
	"linear/sdk-test-payload-stale":                      {err: ErrStale},
	"linear/sdk-test-wrong-secret":                       {err: ErrBadSignature},
	"intercom/sha256-instead-of-sha1":                    {err: ErrBadSignature},
	"pagerduty/go-pagerduty-valid":                       {res: Result{EventType: "incident.priority_updated", ProviderEventID: "d5bb4a04-0a5b-4ee1-a8b7-6a3b2c2b0a11", Timestamp: time.Date(2021, 4, 26, 17, 36, 27, 458e6, time.UTC), OccurredAt: time.Date(2021, 4, 26, 17, 36, 27, 458e6, time.UTC)}},
	"pagerduty/rotation-two-signatures":                  {res: Result{EventType: "incident.priority_updated", ProviderEventID: "d5bb4a04-0a5b-4ee1-a8b7-6a3b2c2b0a11", Timestamp: time.Date(2021, 4, 26, 17, 36, 27, 458e6, time.UTC), OccurredAt: time.Date(2021, 4, 26, 17, 36, 27, 458e6, time.UTC)}},
	"pagerduty/missing-v1-prefix":                        {err: ErrBadSignature},
	"square/sdk-unescaped-chars":                         {},
	"square/sdk-html-special-chars":                      {},
	"square/sdk-wrong-key":                               {err: ErrBadSignature},
	"square/sdk-body-mismatch":                           {err: ErrBadSignature},
	"generic/sha256-prefixed":                            {},
	"generic/uppercase-hex":                              {},
	"generic/truncated":                                  {err: ErrBadSignature},
}

func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	seen := map[string]bool{}
	for _, v := range vs {
		key := v.scheme() + "/" + v.Name
		if seen[key] {
			t.Errorf("duplicate vector %s", key)
		}
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			if !Known(v.scheme()) {
				t.Fatalf("provider %q has no scheme", v.Provider)
			}
			res, err := v.verify()
			want, listed := vectorWant[key]
			switch v.Expect {
			case "valid":
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if listed {
					checkResult(t, res, want.res)
				}
				if v.EventType != nil && res.EventType != *v.EventType {
					t.Errorf("EventType = %q, vector says %q", res.EventType, *v.EventType)
				}
				if v.ProviderEventID != nil && res.ProviderEventID != *v.ProviderEventID {
					t.Errorf("ProviderEventID = %q, vector says %q", res.ProviderEventID, *v.ProviderEventID)
				}
			case "invalid":
				if err == nil {
					t.Fatalf("want invalid, got valid: %+v", res)
				}
				if res != (Result{}) {
					t.Errorf("failed verification returned %+v", res)
				}
				if !classified(err) {
					t.Errorf("error %v wraps no sentinel", err)
				}
				if listed && !errors.Is(err, want.err) {
					t.Errorf("err = %v, want %v", err, want.err)
				}
			default:
				t.Fatalf("expect = %q", v.Expect)
			}
		})
	}
	for key := range vectorWant {
		if !seen[key] {
			t.Errorf("expectation for %s matches no vector", key)
		}
	}
}

func checkResult(t *testing.T, got, want Result) {
	t.Helper()
	if got.EventType != want.EventType {
		t.Errorf("EventType = %q, want %q", got.EventType, want.EventType)
	}
	if got.ProviderEventID != want.ProviderEventID {
		t.Errorf("ProviderEventID = %q, want %q", got.ProviderEventID, want.ProviderEventID)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("Timestamp = %v, want %v", got.Timestamp, want.Timestamp)
	}
	if !got.OccurredAt.Equal(want.OccurredAt) {
		t.Errorf("OccurredAt = %v, want %v", got.OccurredAt, want.OccurredAt)
	}
}

// classified reports whether err wraps one of the sentinels a request can
// cause.
func classified(err error) bool {
	return errors.Is(err, ErrMissingSignature) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrStale)
}
