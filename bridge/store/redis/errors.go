package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hookgate/hookgate/bridge/store"
)

// fail wraps err, returned by Redis calls made to do what. An outage or a
// refused write wraps store.ErrUnavailable, so that ingress answers 503
// and the provider retries; the end of the caller's context is reported as
// such, since then Redis did nothing wrong.
func fail(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%s: %w: %w", what, ctxErr, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unavailable reports whether err means Redis could not be reached or
// refused the call for a reason that should pass.
func unavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) {
		return false // already wrapped
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, goredis.ErrClosed):
		return true
	}
	// Error replies that mean the server cannot take the call now but may
	// later: still loading its data, a failover or resharding under way, a
	// replica that turned read-only, writes refused after a failed save or
	// at maxmemory, too few replicas for min-replicas-to-write, a script
	// hogging the server, no free client slot.
	for _, prefix := range [...]string{
		"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY",
		"MISCONF", "OOM", "NOREPLICAS", "BUSY", "max number of clients",
	} {
		if goredis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}
