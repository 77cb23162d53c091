package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/service"
)

// BenchParallelism is goroutines per GOMAXPROCS in the benchmarks: gateway
// traffic is many concurrent requests, which is what group commit (SQLite)
// and PostgreSQL's own commit batching are for.
const BenchParallelism = 16

// Bench runs the store benchmarks: a durable state change with its audit
// entry in one transaction, and a whole submission through the service.
func Bench(b *testing.B, h Harness) {
	b.Run("StateChangeWithAudit", func(b *testing.B) { benchStateChange(b, h) })
	b.Run("Submit", func(b *testing.B) { benchSubmit(b, h) })
}

func benchStore(b *testing.B, h Harness) daoguard.Store {
	s, err := h.Open(h.NewDSN(b), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := Seed(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchStateChange: each operation locks one action, updates it (version,
// lease, timestamps) and appends one audit entry, committed together.
func benchStateChange(b *testing.B, h Harness) {
	ctx := context.Background()
	s := benchStore(b, h)
	const actions = 1024
	ids := make([]string, actions)
	err := s.Update(ctx, func(tx daoguard.Tx) error {
		for i := range ids {
			ids[i] = fmt.Sprintf("act_bench_%04d", i)
			a := &daoguard.Action{ID: ids[i], OrgID: "org_test", PrincipalID: "agent_1", RequestHash: "h", Intent: Transfer("1", Vendor),
				State: daoguard.StateExecuting, Decoded: daoguard.Decoded{Kind: daoguard.KindTransfer, Operation: daoguard.OpCall}}
			if err := tx.CreateAction(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint64
	runParallel(b, "changes/s", func() error {
		id := ids[next.Add(1)%actions]
		return s.Update(ctx, func(tx daoguard.Tx) error {
			a, err := tx.Action(ctx, id)
			if err != nil {
				return err
			}
			a.LeaseOwner, a.LeaseUntil = "bench", tx.Now().Add(time.Minute)
			if err := tx.UpdateAction(ctx, a); err != nil {
				return err
			}
			return tx.Append(ctx, &daoguard.AuditEntry{OrgID: a.OrgID, ActorID: daoguard.ActorSystem, ActorKind: "system", ActionID: a.ID, Event: "action.lease"})
		})
	})
}

// runParallel runs op from BenchParallelism × GOMAXPROCS goroutines and
// reports the rate as metric.
func runParallel(b *testing.B, metric string, op func() error) {
	b.SetParallelism(BenchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), metric)
}

// benchSubmit: Service.Submit end to end below HTTP — decode, decide, insert
// the action and its two audit entries in one transaction.
func benchSubmit(b *testing.B, h Harness) {
	ctx := context.Background()
	s := benchStore(b, h)
	svc := service.New(s, NewDecider(), nil, "bench")
	runParallel(b, "submits/s", func() error {
		_, err := svc.Submit(ctx, "agent_1", "", Transfer("5", Vendor))
		return err
	})
}
