//go:build !linux

package pglocal

import (
	"context"
	"errors"
)

// Kill kills the postmaster with SIGKILL and waits until it and its
// backends are gone; it is only implemented on Linux.
func (c *Cluster) Kill(ctx context.Context) error {
	return errors.New("kill postgres: only supported on Linux")
}
