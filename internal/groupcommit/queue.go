// Package groupcommit is the queue both stores use to commit concurrent
// units of work together: callers enqueue a unit and wait; a committer takes
// everything waiting (up to a bound) as one batch, commits it with one
// fsync, and reports each unit's own outcome.
package groupcommit

import (
	"context"
	"sync"

	"github.com/daoguard/daoguard"
)

// Unit is one caller's unit of work.
type Unit struct {
	Ctx  context.Context
	Fn   func(daoguard.Tx) error
	done chan error
}

// Done reports the unit's outcome to its caller. Call it exactly once.
func (u *Unit) Done(err error) { u.done <- err }

// Queue hands units from callers to committers.
type Queue struct {
	units  chan *Unit
	quit   chan struct{}
	mu     sync.RWMutex // guards closed against sends on units
	closed bool
}

// NewQueue returns a queue whose batches hold at most max units.
func NewQueue(max int) *Queue {
	return &Queue{units: make(chan *Unit, max), quit: make(chan struct{})}
}

// Do enqueues fn and waits for its outcome. It keeps waiting after ctx ends
// once fn is queued: the batch may already have committed fn's writes, and
// the caller must not be told otherwise.
//
// Errors: fn's error, the batch's error, UNAVAILABLE once the queue is closed.
func (q *Queue) Do(ctx context.Context, fn func(daoguard.Tx) error) error {
	u := &Unit{Ctx: ctx, Fn: fn, done: make(chan error, 1)}
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return errClosed()
	}
	select {
	case q.units <- u:
	case <-ctx.Done():
		q.mu.RUnlock()
		return ctx.Err()
	}
	q.mu.RUnlock()
	return <-u.done
}

// Next blocks for the first waiting unit, then takes whatever else is
// waiting without blocking, up to the queue's bound. Under no load a batch
// is one unit and adds no latency; under load the commit is shared. It
// returns false once the queue is closed, after failing every unit left.
func (q *Queue) Next(batch []*Unit) ([]*Unit, bool) {
	batch = batch[:0]
	select {
	case u := <-q.units:
		batch = append(batch, u)
	case <-q.quit:
		for {
			select {
			case u := <-q.units:
				u.Done(errClosed())
			default:
				return nil, false
			}
		}
	}
	for len(batch) < cap(q.units) {
		select {
		case u := <-q.units:
			batch = append(batch, u)
		default:
			return batch, true
		}
	}
	return batch, true
}

// Waiting is the number of units queued and not yet taken by a committer.
func (q *Queue) Waiting() int { return len(q.units) }

// Close stops accepting units; committers finish their batch in progress,
// and Next fails what is still queued. It reports whether this call closed
// the queue (false if it was closed already).
func (q *Queue) Close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	close(q.quit)
	return true
}

func errClosed() error { return daoguard.Errorf(daoguard.CodeUnavailable, "store is closed") }
