package service

import (
	"context"
	"net/url"
	"strings"
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
// Errors: NOT_FOUND (agent, or no suite configured for it), NOT_HUMAN,
// UNAVAILABLE (no prober).
func (s *Service) RunProbes(ctx context.Context, actorID, agentID string) ([]*ProbeRun, error) {
	if s.Prober == nil {
		return nil, daoguard.Errorf(daoguard.CodeUnavailable, "alignment probes are not configured")
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
			if t.Agent == p.ID || (t.Org == p.OrgID && t.Agent == p.Name) {
				targets = append(targets, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, &daoguard.Error{Code: daoguard.CodeNotFound, Message: "no probe suite is configured for agent " + agent.ID,
			Hint: "add one under probes: in daoguard.yaml"}
	}
	var runs []*ProbeRun
	for _, t := range targets {
		res, err := s.Prober.Run(ctx, t.Suite, t.Endpoint)
		if err != nil {
			return runs, err
		}
		run, err := s.recordProbe(ctx, actorID, agent.ID, t, res)
		if err != nil {
			return runs, err
		}
		runs = append(runs, run)
	}
	return runs, nil
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
				"agent": agent.ID, "suite": res.Suite, "digest": res.Digest, "endpoint": redactURL(res.Endpoint),
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

// probeLoop runs each scheduled target every target.Every until ctx ends.
// With several replicas on one store, each runs its own schedule: give
// every only on one.
func (s *Service) probeLoop(ctx context.Context, t ProbeTarget) {
	tick := time.NewTicker(t.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var agentID string
		err := s.Store.View(ctx, func(tx daoguard.Tx) error {
			p, err := resolveAgent(ctx, tx, t.Org, t.Agent)
			if p != nil {
				agentID = p.ID
			}
			return err
		})
		if err == nil {
			_, err = s.RunProbes(ctx, daoguard.ActorSystem, agentID)
		}
		if err != nil && ctx.Err() == nil {
			s.Logger.Error("scheduled alignment probes failed to run", "agent", t.Agent, "suite", t.Suite.Name, "err", err)
		}
	}
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
	for _, p := range ps {
		if p.Kind == daoguard.PrincipalAgent && p.Name == ref {
			return p, nil
		}
	}
	return nil, daoguard.Errorf(daoguard.CodeNotFound, "no agent %q", ref)
}

// redactURL keeps scheme, host and path: a token in the query stays out of
// the audit log.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(), "/")
}
