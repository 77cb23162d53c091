package groupcommit

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestQueue(t *testing.T) {
	q := NewQueue(4)
	var wg sync.WaitGroup
	results := make([]error, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = q.Do(context.Background(), func(daoguard.Tx) error {
				if i%2 == 1 {
					return errors.New("odd")
				}
				return nil
			})
		}()
	}
	seen, maxBatch := 0, 0
	batch := make([]*Unit, 0, 4)
	for seen < len(results) {
		var ok bool
		batch, ok = q.Next(batch)
		if !ok {
			t.Fatal("queue closed early")
		}
		maxBatch = max(maxBatch, len(batch))
		for _, u := range batch {
			u.Done(u.Fn(nil))
			seen++
		}
	}
	wg.Wait()
	for i, err := range results {
		if (err != nil) != (i%2 == 1) {
			t.Errorf("unit %d: %v", i, err)
		}
	}
	if maxBatch > 4 {
		t.Fatalf("batch of %d exceeds the bound of 4", maxBatch)
	}
	if !q.Close() || q.Close() {
		t.Fatal("Close must report the first close only")
	}
	if err := q.Do(context.Background(), func(daoguard.Tx) error { return nil }); daoguard.ErrorCode(err) != daoguard.CodeUnavailable {
		t.Fatalf("Do after Close: %v", err)
	}
	if _, ok := q.Next(batch); ok {
		t.Fatal("Next after Close must report closed")
	}
}

func TestCancelledBeforeQueued(t *testing.T) {
	q := NewQueue(1)
	q.units <- &Unit{done: make(chan error, 1)} // fill the queue
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Do(ctx, func(daoguard.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
