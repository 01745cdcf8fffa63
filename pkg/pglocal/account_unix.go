//go:build unix

package pglocal

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is the user the server binaries run as when that is not the
// current user. A nil *account means "run as the current user".
type account struct {
	name     string
	uid, gid int
}

// serverAccount returns the postgres user when running as root, because
// initdb, pg_ctl and postgres all refuse to run as root.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and there is no \"postgres\" user to run it as "+
			"(install the postgresql package, which creates it, or run as a non-root user): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("look up user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("look up user postgres: gid %q: %w", u.Gid, err)
	}
	return &account{name: u.Username, uid: uid, gid: gid}, nil
}

func (a *account) setCredential(cmd *exec.Cmd) {
	if a == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)},
	}
}

func (a *account) chown(path string) error {
	return os.Chown(path, a.uid, a.gid)
}

// checkCanEnter reports an error unless the account may search dir and every
// directory above it. Supplementary groups are not considered because the
// Credential set by setCredential drops them.
func (a *account) checkCanEnter(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			// Missing directories are created later with a mode that
			// lets the account in.
			if os.IsNotExist(err) {
				if filepath.Dir(d) == d {
					return nil
				}
				continue
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := fi.Mode().Perm()
		var can bool
		switch {
		case int(st.Uid) == a.uid:
			can = mode&0o100 != 0
		case int(st.Gid) == a.gid:
			can = mode&0o010 != 0
		default:
			can = mode&0o001 != 0
		}
		if !can {
			return fmt.Errorf("user %s, which the server runs as, cannot enter %s (mode %v): "+
				"make it searchable (chmod o+x %s) or put the data directory elsewhere", a.name, d, mode, d)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}
