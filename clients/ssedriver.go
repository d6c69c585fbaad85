package clients

import (
	"context"
	"errors"
)

// NewSSE returns a Driver over hookgate's plain HTTP feed, GET /v1/stream
// (Server-Sent Events), for programs that do not speak MCP. It resumes
// after the checkpoint's last completed event, or from the oldest retained
// event on a first run, and reconnects with Last-Event-ID after a cut (see
// StreamSSE). The feed has no acks: the checkpoint is the progress.
func NewSSE(cfg Config) Driver { return &sseDriver{cfg: cfg} }

type sseDriver struct{ cfg Config }

// Run implements Driver.
func (d *sseDriver) Run(ctx context.Context, h Handler) error {
	cfg := d.cfg.withDefaults()
	if _, err := cfg.baseURL(); err != nil {
		return err
	}
	return runWith(ctx, cfg, h, noAcks{}, func(ctx context.Context, r *runner, resume string) error {
		if resume == "" {
			resume = beginningOfStream
		}
		err := StreamSSE(ctx, SSEOptions{
			Server: cfg.Server, Token: cfg.Token, Label: cfg.Label, After: resume,
			HTTPClient: cfg.HTTPClient, Logger: cfg.Logger,
		}, func(e Event) error { return r.offer(ctx, e) })
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return ctx.Err()
		}
		return err
	})
}
