package session

import (
	"context"
	"errors"
	"time"

	"github.com/vpnfwd/vpnfwd/provider"
)

// The provider's runs, and stopping and starting the tunnel on request
// (gluetun's PUT /v1/vpn/status): stopped, the provider releases the port
// (consumers hear it lost: the down hook runs, the port file empties), the
// WireGuard device goes down and no check runs; started, the device comes
// up and the provider maps a port again.

// provRun is one run of the provider's Run.
type provRun struct {
	cancel context.CancelFunc
	done   chan error    // Run's result (put back by whoever reads it first)
	stop   chan struct{} // closed to unblock a report nobody will read
}

// startProvider runs the provider on a goroutine of its own; its reports
// reach the loop through s.reports.
func (l *loop) startProvider() {
	ctx, cancel := context.WithCancel(context.Background())
	r := provRun{cancel: cancel, done: make(chan error, 1), stop: make(chan struct{})}
	l.provRun = r
	go func() {
		r.done <- l.Session.prov.Run(ctx, func(lease provider.Lease) {
			select {
			case l.reports <- lease:
			case <-r.stop:
			}
		})
	}()
}

// stopProvider ends the provider's run: it releases the lease (capped at
// 2 s) and returns Run's error; then the lease is gone and consumers hear
// so.
func (l *loop) stopProvider() error {
	r := l.provRun
	if r.done == nil {
		return nil // already stopped
	}
	l.provRun = provRun{}
	close(r.stop)
	r.cancel()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(2500 * time.Millisecond): // a release is capped at 2 s
		l.log.Warn("provider did not stop in time")
	}
	if l.cur.Lease.Held() {
		l.cur.Lease = provider.Lease{Provider: l.cur.Lease.Provider}
		why := "released at exit"
		if l.cur.State == StateStopped {
			why = "released: tunnel stopped on request"
		}
		l.emit(KindLost, why)
	}
	return err
}

// Pauser is a tunnel that can be stopped and started again (*wg.Device).
type Pauser interface {
	Down() error
	Up() error
}

type runRequest struct {
	running bool
	done    chan runResult
}

type runResult struct {
	outcome string
	err     error
}

// ErrCannotStop: the tunnel cannot be stopped and started.
var ErrCannotStop = errors.New("this tunnel cannot be stopped and started")

// SetRunning stops the tunnel (running false: the port released, the
// device down) or starts it again, as gluetun's PUT /v1/vpn/status does;
// the outcome is gluetun's word ("stopped", "running", "already stopped",
// "already running").
func (s *Session) SetRunning(ctx context.Context, running bool) (string, error) {
	req := runRequest{running: running, done: make(chan runResult, 1)}
	select {
	case s.control <- req:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.outcome, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// setRunning is SetRunning on the loop.
func (l *loop) setRunning(ctx context.Context, running bool) runResult {
	p, ok := l.tunnel.(Pauser)
	if !ok {
		return runResult{err: ErrCannotStop}
	}
	stopped := l.cur.State == StateStopped
	switch {
	case !running && stopped:
		return runResult{outcome: "already stopped"}
	case running && !stopped:
		return runResult{outcome: "already running"}
	case !running:
		l.log.Info("stopping the tunnel on request: releasing the port")
		l.wg.Wait() // checks under way end first; their answers no longer count
		l.drain()
		l.setState(StateStopped, "stopped on request")
		l.stopProvider()
		if err := p.Down(); err != nil {
			return runResult{err: err}
		}
		return runResult{outcome: "stopped"}
	}
	l.log.Info("starting the tunnel again on request")
	if err := p.Up(); err != nil {
		return runResult{err: err}
	}
	l.fails, l.seen, l.probeOK, l.cur.Port = 0, false, false, PortHealth{}
	l.start, l.lastRxAt = time.Now(), time.Now()
	l.setState(StateConnecting, "started on request")
	l.startProvider()
	l.probe(ctx)
	return runResult{outcome: "running"}
}

// drain drops the answers of checks and recovery steps that ended as the
// tunnel was stopped.
func (l *loop) drain() {
	select {
	case <-l.probeDone:
	default:
	}
	select {
	case <-l.portCheckDone:
	default:
	}
	select {
	case <-l.failoverDone:
	default:
	}
	select {
	case <-l.rehandshakeDone:
	default:
	}
	l.probing, l.portChecking, l.rehandshaking, l.failingOver = false, false, false, false
}
