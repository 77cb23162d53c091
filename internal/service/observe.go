package service

import (
	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
)

// Observer is told what the pipeline and the risk controls did, after it
// committed: metrics and alerts hang off it. The audit log stays the
// record; an observer only makes things visible sooner. Calls come from
// request and background goroutines at once and must not block.
type Observer interface {
	// Decided: a new action and its decision (not an idempotent replay).
	Decided(a *daoguard.Action)
	// BreakerTripped: the anomaly breaker moved an agent to supervised.
	BreakerTripped(agentID string, findings []anomaly.Finding)
	// ProbeRan: an alignment probe suite was run and recorded.
	ProbeRan(run *ProbeRun)
	// AutonomyChanged: an agent's level changed; actorKind is "human",
	// "agent" or "system".
	AutonomyChanged(agentID string, from, to daoguard.Autonomy, actorKind string)
}

// Observers fans out to several observers.
type Observers []Observer

func (os Observers) Decided(a *daoguard.Action) {
	for _, o := range os {
		o.Decided(a)
	}
}

func (os Observers) BreakerTripped(agentID string, f []anomaly.Finding) {
	for _, o := range os {
		o.BreakerTripped(agentID, f)
	}
}

func (os Observers) ProbeRan(run *ProbeRun) {
	for _, o := range os {
		o.ProbeRan(run)
	}
}

func (os Observers) AutonomyChanged(agentID string, from, to daoguard.Autonomy, actorKind string) {
	for _, o := range os {
		o.AutonomyChanged(agentID, from, to, actorKind)
	}
}
