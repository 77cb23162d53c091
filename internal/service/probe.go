package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/probe"
)

// ProbeTarget is an agent's decision endpoint and the suite put to it.
type ProbeTarget struct {
	Org      string // the organisation of the agent a name refers to
	Agent    string // the agent's id or name
	Endpoint string // the agent's decision endpoint (probe.CheckEndpoint)
	Suite    *probe.Suite
	Every    time.Duration     // how often the schedule runs it; 0: on demand only
	LowerTo  daoguard.Autonomy // where a failed run moves the agent; default supervised
}

// ProbeRun is one recorded run of a suite against an agent.
type ProbeRun struct {
	Agent string `json:"agent"`
	*probe.Result
	Autonomy daoguard.Autonomy `json:"autonomy"` // the agent's level after the run
	Lowered  bool              `json:"lowered"`  // the run moved the agent down
	LogIndex uint64            `json:"log_index"`
}

// RunProbes puts every suite configured for agentID to its decision
// endpoint, now, and records each run: a "probe.run" audit entry and, if
// the run failed and the agent stands above the target's level, the move
// down ("principal.autonomy", by daoguard), in one transaction. Humans of
// the agent's organisation run probes on demand; daoguard.ActorSystem runs
// the schedule. Probes never raise an agent.
//
// A suite that cannot be run (its endpoint refused, ctx ended) does not
// stop the others: the runs recorded come back with the errors joined.
//
// Errors: NOT_FOUND (agent, or no suite configured for it), NOT_HUMAN,
// UNAVAILABLE (no prober).
func (s *Service) RunProbes(ctx context.Context, actorID, agentID string) ([]*ProbeRun, error) {
	agent, targets, err := s.probeTargets(ctx, actorID, agentID)
	if err != nil {
		return nil, err
	}
	return s.runTargets(ctx, actorID, agent, targets)
}

// probeTargets checks who asks and returns the agent and its targets.
func (s *Service) probeTargets(ctx context.Context, actorID, agentID string) (*daoguard.Principal, []ProbeTarget, error) {
	if s.Prober == nil {
		return nil, nil, daoguard.Errorf(daoguard.CodeUnavailable, "alignment probes are not configured")
	}
	var agent *daoguard.Principal
	var targets []ProbeTarget
	err := s.Store.View(ctx, func(tx daoguard.Tx) error {
		p, err := tx.Principal(ctx, agentID)
		if err != nil {
			return err
		}
		if actorID != daoguard.ActorSystem {
			actor, err := tx.Principal(ctx, actorID)
			if err != nil {
				return err
			}
			if actor.OrgID != p.OrgID { // reveal nothing about other organisations
				return daoguard.Errorf(daoguard.CodeNotFound, "principal %s not found", agentID)
			}
			if !actor.IsHuman() {
				return daoguard.Errorf(daoguard.CodeNotHuman, "only a human can run alignment probes on demand")
			}
		}
		if p.Kind != daoguard.PrincipalAgent {
			return daoguard.Errorf(daoguard.CodeInvalid, "%s is not an agent", agentID)
		}
		agent = p
		for _, t := range s.Probes {
			if t.Agent == p.ID {
				targets = append(targets, t)
				continue
			}
			if t.Org != p.OrgID || t.Agent != p.Name {
				continue
			}
			// By name: only if the name is this agent's alone, or another
			// agent's endpoint would judge this one.
			if q, err := resolveAgent(ctx, tx, t.Org, t.Agent); err != nil {
				return err
			} else if q.ID == p.ID {
				targets = append(targets, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(targets) == 0 {
		return nil, nil, &daoguard.Error{Code: daoguard.CodeNotFound, Message: "no probe suite is configured for agent " + agent.ID,
			Hint: "add one under probes: in daoguard.yaml"}
	}
	return agent, targets, nil
}

func (s *Service) runTargets(ctx context.Context, actorID string, agent *daoguard.Principal, targets []ProbeTarget) ([]*ProbeRun, error) {
	var runs []*ProbeRun
	var errs []error
	for _, t := range targets {
		res, err := s.Prober.Run(ctx, t.Suite, t.Endpoint, agent.ID)
		if err == nil {
			var run *ProbeRun
			if run, err = s.recordProbe(ctx, actorID, agent.ID, t, res); err == nil {
				runs = append(runs, run)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("suite %s: %w", t.Suite.Name, err))
	}
	return runs, errors.Join(errs...)
}

func (s *Service) recordProbe(ctx context.Context, actorID, agentID string, t ProbeTarget, res *probe.Result) (*ProbeRun, error) {
	lowerTo := t.LowerTo
	if !lowerTo.Valid() {
		lowerTo = daoguard.AutonomySupervised
	}
	run := &ProbeRun{Agent: agentID, Result: res}
	var e *daoguard.AuditEntry
	var from daoguard.Autonomy
	err := s.Store.Update(ctx, func(tx daoguard.Tx) error {
		agent, err := tx.PrincipalForUpdate(ctx, agentID)
		if err != nil {
			return err
		}
		actorKind := "system"
		if actorID != daoguard.ActorSystem {
			actorKind = "human" // RunProbes let only humans through
		}
		failed := res.Failed()
		for i := range failed {
			failed[i].Rationale = "" // untrusted text stays out of the log; the run's answer carries it
		}
		e = &daoguard.AuditEntry{Time: tx.Now(), OrgID: agent.OrgID, ActorID: actorID, ActorKind: actorKind, Event: "probe.run", Subject: agent.ID,
			Detail: mustJSON(map[string]any{
				"agent": agent.ID, "suite": res.Suite, "digest": res.Digest, "endpoint": res.Endpoint,
				"score": res.Score, "threshold": res.Threshold, "passed": res.Passed,
				"scenarios": len(res.Outcomes), "critical_failed": res.CriticalFailed, "failed": failed,
			})}
		if err := tx.Append(ctx, e); err != nil {
			return err
		}
		run.Lowered, from = false, agent.Autonomy
		if !res.Passed && agent.Autonomy > lowerTo {
			if err := setAutonomy(ctx, tx, daoguard.ActorSystem, "system", agent, lowerTo, "alignment probes: "+res.Summary()); err != nil {
				return err
			}
			if _, err := s.lowered(ctx, tx, agent, daoguard.ReasonAgentSupervised, "alignment probes failed"); err != nil {
				return err
			}
			run.Lowered = true
		}
		run.Autonomy = agent.Autonomy
		return nil
	})
	if err != nil {
		return nil, err
	}
	run.LogIndex = e.Seq // some stores number entries at commit
	if s.Observer != nil {
		s.Observer.ProbeRan(run)
		if run.Lowered {
			s.Observer.AutonomyChanged(agentID, from, run.Autonomy, "system")
		}
	}
	if run.Lowered {
		s.Logger.Warn("alignment probes failed: agent moved down", "code", "PROBE_FAILED", "agent", agentID, "to", run.Autonomy, "result", res.Summary())
	} else if !res.Passed {
		s.Logger.Warn("alignment probes failed", "code", "PROBE_FAILED", "agent", agentID, "result", res.Summary())
	} else {
		s.Logger.Info("alignment probes passed", "agent", agentID, "result", res.Summary())
	}
	return run, nil
}

// probeLoop runs target t every t.Every until ctx ends, as daoguard. The
// first run comes when the last recorded run of this suite is t.Every
// old (at once if there is none): restarts do not put the schedule off.
// With several replicas on one store, each runs its own schedule: give
// every only on one.
func (s *Service) probeLoop(ctx context.Context, t ProbeTarget) {
	wait := s.probeDue(ctx, t)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = t.Every
		var agent *daoguard.Principal
		err := s.Store.View(ctx, func(tx daoguard.Tx) (err error) {
			agent, err = resolveAgent(ctx, tx, t.Org, t.Agent)
			return err
		})
		if err == nil {
			_, err = s.runTargets(ctx, daoguard.ActorSystem, agent, []ProbeTarget{t})
		}
		if err != nil && ctx.Err() == nil {
			s.Logger.Error("scheduled alignment probes failed to run", "agent", t.Agent, "suite", t.Suite.Name, "err", err)
		}
	}
}

// probeDue is how long until t's next scheduled run: t.Every after the
// latest probe.run of its suite in the agent's risk history.
func (s *Service) probeDue(ctx context.Context, t ProbeTarget) time.Duration {
	var last time.Time
	var now time.Time
	s.Store.View(ctx, func(tx daoguard.Tx) error {
		now = tx.Now()
		agent, err := resolveAgent(ctx, tx, t.Org, t.Agent)
		if err != nil {
			return err
		}
		hist, err := tx.SubjectAudit(ctx, agent.ID, riskHistory)
		if err != nil {
			return err
		}
		for i := len(hist) - 1; i >= 0; i-- {
			var d struct{ Suite string }
			if hist[i].Event == "probe.run" && json.Unmarshal(hist[i].Detail, &d) == nil && d.Suite == t.Suite.Name {
				last = hist[i].Time
				break
			}
		}
		return nil
	})
	if last.IsZero() {
		return 0
	}
	return max(0, t.Every-now.Sub(last))
}

// resolveAgent finds the agent a probe target names, by id or by name in
// the organisation.
func resolveAgent(ctx context.Context, tx daoguard.Tx, org, ref string) (*daoguard.Principal, error) {
	if p, err := tx.Principal(ctx, ref); err == nil {
		return p, nil
	} else if !daoguard.IsNotFound(err) {
		return nil, err
	}
	ps, err := tx.Principals(ctx, org)
	if err != nil {
		return nil, err
	}
	var found *daoguard.Principal
	for _, p := range ps {
		if p.Kind == daoguard.PrincipalAgent && p.Name == ref {
			if found != nil {
				return nil, daoguard.Errorf(daoguard.CodeConflict, "two agents are named %q: name the agent by its id in probes:", ref)
			}
			found = p
		}
	}
	if found == nil {
		return nil, daoguard.Errorf(daoguard.CodeNotFound, "no agent %q", ref)
	}
	return found, nil
}
