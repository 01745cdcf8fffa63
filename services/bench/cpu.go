package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter measures the CPU time the host and this process spend over a
// run. Throughput on a shared 2-core host moves by a third between runs;
// the CPU a referral costs moves much less, so it is what tells whether a
// change made the pipeline cheaper.
type cpuMeter struct {
	host, self time.Duration
}

func startCPU() cpuMeter { return cpuMeter{host: hostBusy(), self: selfCPU()} }

// cpuCost is the CPU one referral cost over a run: on the whole host
// (Postgres, NATS, the four services, the bench) and in this process (the
// services, NATS and the bench, without Postgres).
type cpuCost struct{ host, self time.Duration }

func (m cpuMeter) per(n int) cpuCost {
	if n <= 0 {
		return cpuCost{}
	}
	return cpuCost{host: (hostBusy() - m.host) / time.Duration(n), self: (selfCPU() - m.self) / time.Duration(n)}
}

func (c cpuCost) String() string {
	if c.host <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f µs per referral on the host (%.0f µs in Postgres and other processes, %.0f µs in the services, NATS and the bench)",
		us(c.host), us(c.host-c.self), us(c.self))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// hostBusy is the host's busy CPU time since boot: every field of the cpu
// line of /proc/stat but idle and iowait. 0 where /proc is missing.
func hostBusy() time.Duration {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if !s.Scan() {
		return 0
	}
	fields := strings.Fields(s.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range fields[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest, guest_nice
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(ticks) * 10 * time.Millisecond
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
