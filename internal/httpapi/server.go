// Package httpapi is daoguard's HTTP edge: routing, problem+json errors and
// the translation of error codes to statuses. Handlers call the service;
// they hold no business rules. (The signed /v1 API arrives with the
// authentication layer; today the edge serves the health check.)
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/daoguard/daoguard"
)

// Server serves the HTTP API over a store.
type Server struct {
	Store  daoguard.Store
	Logger *slog.Logger
}

// Handler returns the routed handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, s.Logger, daoguard.Errorf(daoguard.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// healthz answers 200 only if the store answers a read: a gateway that
// cannot reach its store must be taken out of a load balancer's rotation.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := s.Store.View(ctx, func(tx daoguard.Tx) error { _, err := tx.AuditSize(ctx); return err })
	if err != nil {
		s.Logger.Error("health check: store unreachable", "err", err)
		writeProblem(w, r, s.Logger, &daoguard.Error{Code: daoguard.CodeUnavailable, Message: "the store is unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
