package netns

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// agentCheck is AgentEnv's value for Check's probe: the agent exits at
// once.
const agentCheck = "check"

// Check says, creating nothing that outlives it, whether this process can
// make exec's namespaces: it starts its own binary as the agent's probe
// (which exits at once) in new namespaces made as Start makes them (a
// user namespace too without root, mapping this user to root inside),
// and reports why not.
func Check() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("exec: finding vpnfwd's own binary: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{AgentEnv + "=" + agentCheck}
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	cmd.SysProcAttr = attr
	if err := startDumpable(cmd); err != nil {
		return fmt.Errorf("exec cannot make its namespaces here: %w%s", err, hint(err))
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("exec's namespace probe: %w", err)
	}
	return nil
}
