package subscribe

import (
	"context"
	"net"
	"testing"
)

// LoopbackOnly exposes loopbackOnly to the package's external tests.
func LoopbackOnly(t testing.TB) func(ctx context.Context, network, address string) (net.Conn, error) {
	return loopbackOnly(t)
}
