package pglocal_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestZZKilled(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	c := start(t, dir)
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil { t.Fatal(err) }
	defer conn.Close(t.Context())
	b, _ := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(10 * time.Millisecond)
	st := time.Now()
	c2 := start(t, dir)
	t.Logf("restart after kill took %v", time.Since(st))
	conn2, err := pgx.Connect(t.Context(), c2.URL("postgres"))
	if err != nil { t.Fatal(err) }
	conn2.Close(t.Context())
}
