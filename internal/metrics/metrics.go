// Package metrics exposes what the pipeline and the risk controls do as
// Prometheus metrics: decisions and their reason codes, screening flags,
// anomaly breaker trips, alignment probe runs and scores, autonomy
// changes, and the agents at each autonomy level. It implements
// service.Observer; serve hands its handler to the metrics listener.
//
// Labels are bounded sets (verdicts, reason codes, rules, suites, levels)
// plus agent ids for the per-agent probe score: one series per agent and
// suite, never per action.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/anomaly"
	"github.com/daoguard/daoguard/internal/service"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the registry and its collectors.
type Metrics struct {
	Registry *prometheus.Registry

	decisions    *prometheus.CounterVec
	reasons      *prometheus.CounterVec
	screenFlags  *prometheus.CounterVec
	breakerTrips *prometheus.CounterVec
	probeRuns    *prometheus.CounterVec
	probeScore   *prometheus.GaugeVec
	autonomy     *prometheus.CounterVec
	AlertsSent   *prometheus.CounterVec // by result: sent | failed | dropped
}

var _ service.Observer = (*Metrics)(nil)

// New returns the metrics, with the Go runtime's and the process's, and a
// gauge of the agents at each autonomy level read from st on each scrape.
func New(st daoguard.Store, orgID string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_decisions_total",
			Help: "New actions by verdict (allow, needs_approval, deny) and the kind of principal that submitted them."}, []string{"verdict", "principal_kind"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_decision_reasons_total",
			Help: "Reason codes attached to decisions (docs/ERRORS.md)."}, []string{"code"}),
		screenFlags: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_screen_flags_total",
			Help: "Submissions whose rationale screening flagged (TEXT_FLAGGED) or found inconsistent with the action (RATIONALE_MISMATCH)."}, []string{"code"}),
		breakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_anomaly_breaker_trips_total",
			Help: "Anomaly breaker trips (agent moved to supervised), by the tripping rule."}, []string{"rule"}),
		probeRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_probe_runs_total",
			Help: "Alignment probe runs by suite and result (passed, failed)."}, []string{"suite", "result"}),
		probeScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "daoguard_probe_score",
			Help: "The latest alignment probe score (0..1) of each agent and suite."}, []string{"agent", "suite"}),
		autonomy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_autonomy_changes_total",
			Help: "Agent autonomy changes by new level and by who changed it (human, agent, system)."}, []string{"to", "actor_kind"}),
		AlertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "daoguard_alerts_total",
			Help: "Alerts to alert_url by result (sent, failed, dropped)."}, []string{"result"}),
	}
	m.Registry.MustRegister(m.decisions, m.reasons, m.screenFlags, m.breakerTrips, m.probeRuns, m.probeScore, m.autonomy, m.AlertsSent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		m.Registry.MustRegister(&agentsCollector{st: st, org: orgID})
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func (m *Metrics) Decided(a *daoguard.Action) {
	kind := "human"
	if a.Logged != nil && a.Logged.ActorKind != "" {
		kind = a.Logged.ActorKind
	}
	m.decisions.WithLabelValues(a.Decision.Verdict.String(), kind).Inc()
	for _, r := range a.Decision.Reasons {
		m.reasons.WithLabelValues(r.Code).Inc()
		if r.Code == daoguard.ReasonTextFlagged || r.Code == daoguard.ReasonTextMismatch {
			m.screenFlags.WithLabelValues(r.Code).Inc()
		}
	}
}

func (m *Metrics) BreakerTripped(_ string, findings []anomaly.Finding) {
	for _, f := range findings {
		if f.Trip {
			m.breakerTrips.WithLabelValues(f.Rule).Inc()
		}
	}
}

func (m *Metrics) ProbeRan(run *service.ProbeRun) {
	result := "passed"
	if !run.Passed {
		result = "failed"
	}
	m.probeRuns.WithLabelValues(run.Suite, result).Inc()
	m.probeScore.WithLabelValues(run.Agent, run.Suite).Set(run.Score)
}

func (m *Metrics) AutonomyChanged(_ string, _, to daoguard.Autonomy, actorKind string) {
	m.autonomy.WithLabelValues(to.String(), actorKind).Inc()
}

// agentsCollector reads the agents at each autonomy level on each scrape:
// the gauge is the store's truth, also after a restart or a change made by
// another replica.
type agentsCollector struct {
	st  daoguard.Store
	org string
}

var agentsDesc = prometheus.NewDesc("daoguard_agents", "Agents by autonomy level (read from the store at scrape time).", []string{"autonomy"}, nil)

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- agentsDesc }

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ps []*daoguard.Principal
	if err := c.st.View(ctx, func(tx daoguard.Tx) (err error) { ps, err = tx.Principals(ctx, c.org); return err }); err != nil {
		ch <- prometheus.NewInvalidMetric(agentsDesc, err)
		return
	}
	n := map[daoguard.Autonomy]float64{}
	for _, p := range ps {
		if p.Kind == daoguard.PrincipalAgent {
			n[p.Autonomy]++
		}
	}
	for a := daoguard.AutonomySuspended; a <= daoguard.AutonomyAutonomous; a++ {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, n[a], a.String())
	}
}
