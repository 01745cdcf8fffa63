//go:build !unix

package pglocal

import "os/exec"

// account is the user the server binaries run as when that is not the
// current user. Only Unix has a root user to avoid, so here it is always nil.
type account struct{}

func serverAccount() (*account, error) { return nil, nil }

func (a *account) setCredential(*exec.Cmd) {}

func (a *account) chown(string) error { return nil }

func (a *account) checkCanEnter(string) error { return nil }
