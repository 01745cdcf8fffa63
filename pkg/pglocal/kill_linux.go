package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kill kills the postmaster with SIGKILL, as the OOM killer or a crash
// would, and returns once it and every backend it started are gone (the
// backends end on their own when they see their postmaster die). Nothing
// is shut down cleanly: Restart then starts the server again, and it
// recovers from its WAL.
func (c *Cluster) Kill(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, err := c.postmasterPID()
	if err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	// pg_ctl starts the postmaster in a session of its own, so it leads
	// a process group that holds its backends too.
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		return fmt.Errorf("kill postgres: postmaster %d: %w", pid, err)
	}
	if pgid != pid {
		return fmt.Errorf("kill postgres: postmaster %d does not lead its process group (%d)", pid, pgid)
	}
	c.log.Info("killing postgres", "pid", pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	for {
		live, err := groupLive(pgid)
		if err != nil {
			return fmt.Errorf("kill postgres: %w", err)
		}
		if len(live) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill postgres: processes %v still run: %w", live, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A dead postmaster stays a zombie until init reaps it, and Postgres
	// would take the pid in its lock files for a server still running.
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		locks := []string{filepath.Join(c.dir, "postmaster.pid")}
		if d := c.socketDir(); d != "" {
			locks = append(locks, filepath.Join(d, ".s.PGSQL."+strconv.Itoa(c.port)+".lock"))
		}
		for _, f := range locks {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("kill postgres: remove stale lock file: %w", err)
			}
		}
	}
	return nil
}

// postmasterPID reads the postmaster's pid from the first line of
// postmaster.pid.
func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("is the server running? %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(line)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid starts with %q, not a pid", line)
	}
	return pid, nil
}

// groupLive lists the processes of process group pgid that are not
// zombies.
func groupLive(pgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var live []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			live = append(live, pid)
		}
	}
	return live, nil
}
