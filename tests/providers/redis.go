package providers

import (
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"time"
)

// StartRedis runs a real redis-server (bin: its path, "redis-server" from Debian's package as
// `make test` installs it) on the loopback port, without persistence, and waits until it accepts
// connections. stop kills it; calling it again does nothing. The server dies with this process.
func StartRedis(bin string, port int) (stop func(), err error) {
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s (make test installs Debian's redis-server): %w", bin, err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("redis-server did not listen on %d", port)
}
