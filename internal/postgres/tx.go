package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/daoguard/daoguard/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlrow"
	"github.com/jackc/pgx/v5"
)

// Tx is one unit of work (Update) or a read snapshot (View).
type Tx struct {
	q       pgx.Tx
	now     time.Time
	write   bool
	pending []*daoguard.AuditEntry // appended in this unit, positioned at commit
	// batch, if set, is the context of the batch this unit runs in. A unit's
	// own context must not cancel a query: pgx closes the connection on
	// cancellation, which would abort every other unit of the batch.
	batch context.Context
	// seen records the version of each action this unit read, so that
	// UpdateAction can tell a lost race (retry) from a stale caller (CONFLICT).
	seen map[string]int64
	// undo restores the fields this unit set on its callers' objects
	// (versions, timestamps). The batch runs it when the unit's writes do
	// not commit, so a rerun starts from what the caller passed in.
	undo []func()
	// after runs once the unit's writes have committed (AfterCommit).
	after []func()
	// policyOf is the policy version in force, read with the ledger lock
	// (see LedgerTail), by organisation: under that lock it cannot change
	// but through this unit's own AddPolicy, which drops it.
	policyOf map[string]int
}

// undoAll runs undo functions, newest first.
func undoAll(fs []func()) {
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// errLostRace: an action this unit read was changed by another transaction
// before the unit wrote it. The unit is rolled back to its savepoint and run
// again; the rerun reads the new state.
var errLostRace = errors.New("postgres: an action changed after it was read")

func (tx *Tx) c(ctx context.Context) context.Context {
	if tx.batch != nil {
		return tx.batch
	}
	return ctx
}

var _ daoguard.Tx = (*Tx)(nil)

// Now is the single time of this unit of work.
func (tx *Tx) Now() time.Time { return tx.now }

// ts maps the zero time to NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func notFound(err error, what, id string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return daoguard.Errorf(daoguard.CodeNotFound, "%s %s not found", what, id)
	}
	return err
}

// Advisory lock classes. Organisations and principals carry no version:
// instead, a unit that reads one takes a shared lock on its key, and a unit
// that means to change one (pause, autonomy) takes the exclusive lock before
// reading it. The writer thus waits for in-flight units that decided on the
// old row, and every unit after it reads the new one — a pause or a
// suspension cannot be overtaken. Advisory locks are held to the end of the
// transaction and, unlike row locks, write nothing to the WAL.
const (
	lockOrg       = 1
	lockPrincipal = 2
)

// lockedRow takes the lock (in a write unit) and runs query, pipelined in
// one round trip. The query is a statement of its own, so under READ
// COMMITTED its snapshot is taken after the lock is granted.
func (tx *Tx) lockedRow(ctx context.Context, class int32, id string, exclusive bool, query string, args []any, scan func(pgx.Row) error) error {
	if !tx.write {
		return scan(tx.q.QueryRow(tx.c(ctx), query, args...))
	}
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+fn+`($1, hashtext($2))`, class, id)
	b.Queue(query, args...)
	br := tx.q.SendBatch(tx.c(ctx), b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return err
	}
	err := scan(br.QueryRow())
	return errors.Join(err, br.Close())
}

func (tx *Tx) Org(ctx context.Context, id string) (*daoguard.Organisation, error) {
	return tx.org(ctx, id, false)
}

// OrgForUpdate reads the organisation with the exclusive lock (see lockOrg).
func (tx *Tx) OrgForUpdate(ctx context.Context, id string) (*daoguard.Organisation, error) {
	return tx.org(ctx, id, true)
}

func (tx *Tx) org(ctx context.Context, id string, exclusive bool) (*daoguard.Organisation, error) {
	var o daoguard.Organisation
	var pausedAt *time.Time
	err := tx.lockedRow(ctx, lockOrg, id, exclusive, `SELECT id, name, paused, paused_by, paused_at, created FROM orgs WHERE id = $1`, []any{id},
		func(r pgx.Row) error { return r.Scan(&o.ID, &o.Name, &o.Paused, &o.PausedBy, &pausedAt, &o.Created) })
	if err != nil {
		return nil, notFound(err, "organisation", id)
	}
	o.PausedAt, o.Created = fromTS(pausedAt), o.Created.UTC()
	return &o, nil
}

func (tx *Tx) PutOrg(ctx context.Context, o *daoguard.Organisation) error {
	if o.Created.IsZero() {
		o.Created = tx.now
	}
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO orgs (id, name, paused, paused_by, paused_at, created) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at`,
		o.ID, o.Name, o.Paused, o.PausedBy, ts(o.PausedAt), o.Created)
	return err
}

func (tx *Tx) Principal(ctx context.Context, id string) (*daoguard.Principal, error) {
	return tx.principal(ctx, id, false)
}

func (tx *Tx) Principals(ctx context.Context, orgID string) ([]*daoguard.Principal, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT id, org_id, kind, name, roles, autonomy, created, updated FROM principals WHERE org_id = $1 ORDER BY created, id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Principal
	for rows.Next() {
		var p daoguard.Principal
		var kind, roles, autonomy string
		if err := rows.Scan(&p.ID, &p.OrgID, &kind, &p.Name, &roles, &autonomy, &p.Created, &p.Updated); err != nil {
			return nil, err
		}
		if err := sqlrow.DecodePrincipal(&p, kind, roles, autonomy); err != nil {
			return nil, err
		}
		p.Created, p.Updated = p.Created.UTC(), p.Updated.UTC()
		out = append(out, &p)
	}
	return out, rows.Err()
}

// PrincipalForUpdate reads the principal with the exclusive lock (see lockOrg).
func (tx *Tx) PrincipalForUpdate(ctx context.Context, id string) (*daoguard.Principal, error) {
	return tx.principal(ctx, id, true)
}

func (tx *Tx) principal(ctx context.Context, id string, exclusive bool) (*daoguard.Principal, error) {
	var p daoguard.Principal
	var kind, roles, autonomy string
	err := tx.lockedRow(ctx, lockPrincipal, id, exclusive, `SELECT id, org_id, kind, name, roles, autonomy, created, updated FROM principals WHERE id = $1`, []any{id},
		func(r pgx.Row) error {
			return r.Scan(&p.ID, &p.OrgID, &kind, &p.Name, &roles, &autonomy, &p.Created, &p.Updated)
		})
	if err != nil {
		return nil, notFound(err, "principal", id)
	}
	if err := sqlrow.DecodePrincipal(&p, kind, roles, autonomy); err != nil {
		return nil, err
	}
	p.Created, p.Updated = p.Created.UTC(), p.Updated.UTC()
	return &p, nil
}

func (tx *Tx) PutPrincipal(ctx context.Context, p *daoguard.Principal) error {
	if p.Created.IsZero() {
		p.Created = tx.now
	}
	p.Updated = tx.now
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO principals (id, org_id, kind, name, roles, autonomy, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, roles = excluded.roles, autonomy = excluded.autonomy, updated = excluded.updated`,
		p.ID, p.OrgID, p.Kind.String(), p.Name, sqlrow.RolesText(p), sqlrow.AutonomyText(p), p.Created, p.Updated)
	return err
}

func (tx *Tx) Account(ctx context.Context, orgID, name string) (*daoguard.Account, error) {
	var a daoguard.Account
	var kind string
	var chain int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT org_id, name, chain_id, address, kind FROM accounts WHERE org_id = $1 AND name = $2`, orgID, name).
		Scan(&a.OrgID, &a.Name, &chain, &a.Address, &kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.FieldError(daoguard.CodeUnknownAccount, "account", "no account named %q", name)
	} else if err != nil {
		return nil, err
	}
	a.ChainID = uint64(chain)
	a.Kind, err = daoguard.ParseAccountKind(kind)
	return &a, err
}

func (tx *Tx) PutAccount(ctx context.Context, a *daoguard.Account) error {
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO accounts (org_id, name, chain_id, address, kind) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, name) DO UPDATE SET chain_id = excluded.chain_id, address = excluded.address, kind = excluded.kind`,
		a.OrgID, a.Name, int64(a.ChainID), a.Address, a.Kind.String())
	return err
}

func (tx *Tx) Asset(ctx context.Context, orgID, symbol string) (*daoguard.Asset, error) {
	var a daoguard.Asset
	var chain int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT org_id, symbol, chain_id, address, decimals FROM assets WHERE org_id = $1 AND symbol = $2`, orgID, symbol).
		Scan(&a.OrgID, &a.Symbol, &chain, &a.Address, &a.Decimals)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, daoguard.FieldError(daoguard.CodeUnknownAsset, "asset", "no asset with symbol %q", symbol)
	}
	a.ChainID = uint64(chain)
	return &a, err
}

func (tx *Tx) PutAsset(ctx context.Context, a *daoguard.Asset) error {
	_, err := tx.q.Exec(tx.c(ctx), `INSERT INTO assets (org_id, symbol, chain_id, address, decimals) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, symbol) DO UPDATE SET chain_id = excluded.chain_id, address = excluded.address, decimals = excluded.decimals`,
		a.OrgID, a.Symbol, int64(a.ChainID), a.Address, a.Decimals)
	return err
}

const actionColumns = `id, org_id, principal_id, COALESCE(idempotency_key, ''), request_hash, state, intent, decoded, decision,
	runnable_at, expires_at, attempt, lease_owner, lease_until, result, version, created, updated`

func scanAction(s pgx.Row) (*daoguard.Action, error) {
	var a daoguard.Action
	var r sqlrow.Action
	var intent, decoded, decision string
	var result *string
	var runnable, expires, lease *time.Time
	err := s.Scan(&a.ID, &a.OrgID, &a.PrincipalID, &a.IdempotencyKey, &a.RequestHash, &r.State, &intent, &decoded, &decision,
		&runnable, &expires, &a.Attempt, &a.LeaseOwner, &lease, &result, &a.Version, &a.Created, &a.Updated)
	if err != nil {
		return nil, err
	}
	r.Intent, r.Decoded, r.Decision = []byte(intent), []byte(decoded), []byte(decision)
	if result != nil {
		r.Result = []byte(*result)
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	a.RunnableAt, a.ExpiresAt, a.LeaseUntil = fromTS(runnable), fromTS(expires), fromTS(lease)
	a.Created, a.Updated = a.Created.UTC(), a.Updated.UTC()
	return &a, nil
}

// Action reads one action. Concurrency is optimistic: no row lock is taken
// (a FOR UPDATE lock costs a WAL record of its own); instead the version
// read here is checked when the unit writes the action, and a unit that
// lost a race is run again. Every change to an action bumps its version,
// so two processes deciding on one action still cannot both win.
func (tx *Tx) Action(ctx context.Context, id string) (*daoguard.Action, error) {
	a, err := scanAction(tx.q.QueryRow(tx.c(ctx), `SELECT `+actionColumns+` FROM actions WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "action", id)
	}
	tx.saw(a)
	return a, nil
}

// saw records the latest version of an action this unit read.
func (tx *Tx) saw(a *daoguard.Action) {
	if !tx.write {
		return
	}
	if tx.seen == nil {
		tx.seen = map[string]int64{}
	}
	tx.seen[a.ID] = a.Version
}

func (tx *Tx) ActionByIdempotencyKey(ctx context.Context, principalID, key string) (*daoguard.Action, error) {
	a, err := scanAction(tx.q.QueryRow(tx.c(ctx), `SELECT `+actionColumns+` FROM actions WHERE principal_id = $1 AND idempotency_key = $2`, principalID, key))
	if err != nil {
		return nil, notFound(err, "action with idempotency key", key)
	}
	tx.saw(a)
	return a, nil
}

// CreateAction inserts a. ON CONFLICT DO NOTHING waits for a concurrent
// insert of the same idempotency key to commit or abort, then reports it.
func (tx *Tx) CreateAction(ctx context.Context, a *daoguard.Action) error {
	r, err := sqlrow.Encode(a)
	if err != nil {
		return err
	}
	v, c, u := a.Version, a.Created, a.Updated
	a.Version, a.Created, a.Updated = 1, tx.now, tx.now
	tag, err := tx.q.Exec(tx.c(ctx), `INSERT INTO actions (id, org_id, principal_id, idempotency_key, request_hash, state, intent, decoded, decision,
		runnable_at, expires_at, attempt, lease_owner, lease_until, result, version, created, updated, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT (principal_id, idempotency_key) DO NOTHING`,
		a.ID, a.OrgID, a.PrincipalID, sqlrow.Nullable(a.IdempotencyKey), a.RequestHash, r.State, string(r.Intent), string(r.Decoded), string(r.Decision),
		ts(a.RunnableAt), ts(a.ExpiresAt), a.Attempt, a.LeaseOwner, ts(a.LeaseUntil), r.NullResult(), a.Version, a.Created, a.Updated, a.Decoded.Kind.String())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		a.Version, a.Created, a.Updated = v, c, u
		return daoguard.ErrIdempotencyKeyUsed
	}
	tx.undo = append(tx.undo, func() { a.Version, a.Created, a.Updated = v, c, u })
	return nil
}

func (tx *Tx) UpdateAction(ctx context.Context, a *daoguard.Action) error {
	r, err := sqlrow.EncodeMutable(a)
	if err != nil {
		return err
	}
	tag, err := tx.q.Exec(tx.c(ctx), `UPDATE actions SET state = $1, decision = $2, runnable_at = $3, expires_at = $4,
		attempt = $5, lease_owner = $6, lease_until = $7, result = $8, version = version + 1, updated = $9
		WHERE id = $10 AND version = $11`,
		r.State, string(r.Decision), ts(a.RunnableAt), ts(a.ExpiresAt), a.Attempt, a.LeaseOwner, ts(a.LeaseUntil),
		r.NullResult(), tx.now, a.ID, a.Version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if v, ok := tx.seen[a.ID]; ok && v == a.Version {
			return errLostRace // read in this unit, changed by another since
		}
		if _, err := tx.Action(ctx, a.ID); err != nil {
			return err
		}
		return daoguard.Errorf(daoguard.CodeConflict, "action %s was changed concurrently", a.ID)
	}
	v, u := a.Version, a.Updated
	tx.undo = append(tx.undo, func() { a.Version, a.Updated = v, u })
	a.Version++
	if tx.seen != nil {
		tx.seen[a.ID] = a.Version // a second write in this unit is not a race
	}
	a.Updated = tx.now
	return nil
}

func (tx *Tx) FindActions(ctx context.Context, f daoguard.ActionFilter) ([]*daoguard.Action, error) {
	cmp, order := ">", "id"
	if f.Newest {
		cmp, order = "<", "id DESC"
	}
	q := `SELECT ` + actionColumns + ` FROM actions WHERE ($1 = '' OR org_id = $1) AND ($2 = '' OR principal_id = $2)
		AND (cardinality($3::text[]) = 0 OR state = ANY($3))
		AND ($4::timestamptz IS NULL OR runnable_at <= $4)
		AND ($5::timestamptz IS NULL OR expires_at <= $5)
		AND ($6::timestamptz IS NULL OR lease_until <= $6)
		AND ($7 = '' OR id ` + cmp + ` $7)
		AND (NOT $9 OR org_id NOT IN (SELECT id FROM orgs WHERE paused))
		AND (NOT $10 OR org_id IN (SELECT id FROM orgs WHERE paused))
		AND ($11 = '' OR kind = $11)
		ORDER BY ` + order + ` LIMIT $8`
	states := make([]string, len(f.States))
	for i, s := range f.States {
		states[i] = s.String()
	}
	rows, err := tx.q.Query(tx.c(ctx), q, f.OrgID, f.PrincipalID, states, ts(f.RunnableBy), ts(f.ExpiresBy), ts(f.LeaseEndedBy), f.AfterID, sqlrow.Limit(f.Limit), f.NotPaused, f.Paused, kindFilter(f.Kind))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Action
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, err
		}
		tx.saw(a)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (tx *Tx) AddApproval(ctx context.Context, ap *daoguard.Approval) error {
	if ap.Created.IsZero() {
		ap.Created = tx.now
	}
	tag, err := tx.q.Exec(tx.c(ctx), `INSERT INTO approvals (action_id, principal_id, approve, signature, comment, created) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (action_id, principal_id) DO NOTHING`,
		ap.ActionID, ap.PrincipalID, ap.Approve, ap.Signature, ap.Comment, ap.Created)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return sqlrow.ErrDuplicateApproval(ap.PrincipalID)
	}
	return nil
}

func (tx *Tx) Approvals(ctx context.Context, actionID string) ([]daoguard.Approval, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT action_id, principal_id, approve, signature, comment, created FROM approvals WHERE action_id = $1 ORDER BY created, principal_id`, actionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.Approval
	for rows.Next() {
		var ap daoguard.Approval
		if err := rows.Scan(&ap.ActionID, &ap.PrincipalID, &ap.Approve, &ap.Signature, &ap.Comment, &ap.Created); err != nil {
			return nil, err
		}
		ap.Created = ap.Created.UTC()
		out = append(out, ap)
	}
	return out, rows.Err()
}

// Append buffers e; flushAudit positions and inserts the unit's entries as
// its last step, so the head row is locked only for the commit itself.
func (tx *Tx) Append(ctx context.Context, e *daoguard.AuditEntry) error {
	if !tx.write {
		return daoguard.Errorf(daoguard.CodeInternal, "append in a read-only transaction")
	}
	if e.Time.IsZero() {
		e.Time = tx.now
	}
	e.FromRequest(ctx)
	tx.pending = append(tx.pending, e)
	return nil
}

// flushAudit positions and inserts pending entries and their Merkle
// hashes. Taking positions locks the head row until commit, so it runs once
// per batch, as the last step before commit; the tree's right edge is read
// under that lock, so replicas extend one tree in turn. Three round trips:
// the head, the right edge, and one pipelined batch of both inserts.
func flushAudit(ctx context.Context, q pgx.Tx, pending []*daoguard.AuditEntry) error {
	n := len(pending)
	if n == 0 {
		return nil
	}
	var first int64
	if err := q.QueryRow(ctx, `UPDATE audit_head SET next = next + $1 RETURNING next - $1`, n).Scan(&first); err != nil {
		return err
	}
	// What the rows will hold, for the tree: timestamptz keeps microseconds.
	rows := make([]*daoguard.AuditEntry, n)
	seqs := make([]int64, n)
	times := make([]time.Time, n)
	cols := make([][]string, 7)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	details := make([]*string, n)
	var subjects []string
	var subjectSeqs []int64
	for i, e := range pending {
		e.Seq = uint64(first) + uint64(i)
		c := *e
		c.Time = time.UnixMicro(e.Time.UnixMicro()).UTC()
		rows[i], seqs[i], times[i] = &c, int64(c.Seq), c.Time
		cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i], cols[6][i] = e.OrgID, e.ActorID, e.ActorKind, e.ActionID, e.Event, e.KeyID, e.RequestDigest
		if len(e.Detail) > 0 {
			d := string(e.Detail)
			details[i] = &d
		}
		if e.Subject != "" {
			subjects, subjectSeqs = append(subjects, e.Subject), append(subjectSeqs, int64(c.Seq))
		}
	}
	want := audit.RightEdge(first)
	got := map[int64][]byte{}
	if len(want) > 0 {
		r, err := q.Query(ctx, `SELECT idx, hash FROM audit_hash WHERE idx = ANY($1)`, want)
		if err != nil {
			return err
		}
		for r.Next() {
			var idx int64
			var h []byte
			if err := r.Scan(&idx, &h); err != nil {
				r.Close()
				return err
			}
			got[idx] = h
		}
		r.Close()
		if err := r.Err(); err != nil {
			return err
		}
	}
	edge := make([]tlog.Hash, len(want))
	for i, x := range want {
		if len(got[x]) != tlog.HashSize {
			return fmt.Errorf("audit tree: hash %d of the tree so far is missing", x)
		}
		edge[i] = tlog.Hash(got[x])
	}
	start, hashes, err := audit.Append(first, edge, rows)
	if err != nil {
		return fmt.Errorf("audit tree: %w", err)
	}
	idx := make([]int64, len(hashes))
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		idx[i], hs[i] = start+int64(i), hashes[i][:]
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit (seq, time, org_id, actor_id, actor_kind, action_id, event, detail, key_id, request_digest)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`,
		seqs, times, cols[0], cols[1], cols[2], cols[3], cols[4], details, cols[5], cols[6])
	b.Queue(`INSERT INTO audit_hash (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idx, hs)
	if len(subjects) > 0 {
		b.Queue(`INSERT INTO audit_subject (subject, seq) SELECT * FROM unnest($1::text[], $2::bigint[])`, subjects, subjectSeqs)
	}
	return q.SendBatch(ctx, b).Close()
}

func (tx *Tx) AuditEntries(ctx context.Context, from uint64, limit int) ([]daoguard.AuditEntry, error) {
	return tx.auditQuery(ctx, `seq >= $1`, int64(from), sqlrow.Limit(limit))
}

func (tx *Tx) ActionAudit(ctx context.Context, actionID string) ([]daoguard.AuditEntry, error) {
	return tx.auditQuery(ctx, `action_id = $1`, actionID, daoguard.MaxFindLimit)
}

func (tx *Tx) SubjectAudit(ctx context.Context, principalID string, limit int) ([]daoguard.AuditEntry, error) {
	n := sqlrow.Limit(limit)
	return tx.auditQuery(ctx, fmt.Sprintf(`seq IN (SELECT seq FROM audit_subject WHERE subject = $1 ORDER BY seq DESC LIMIT %d)`, n), principalID, n)
}

func (tx *Tx) auditQuery(ctx context.Context, where string, arg any, limit int) ([]daoguard.AuditEntry, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT seq, time, org_id, actor_id, actor_kind, action_id, event, detail, key_id, request_digest FROM audit WHERE `+where+` ORDER BY seq LIMIT $2`, arg, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.AuditEntry
	for rows.Next() {
		var e daoguard.AuditEntry
		var seq int64
		var detail *string
		if err := rows.Scan(&seq, &e.Time, &e.OrgID, &e.ActorID, &e.ActorKind, &e.ActionID, &e.Event, &detail, &e.KeyID, &e.RequestDigest); err != nil {
			return nil, err
		}
		e.Seq, e.Time = uint64(seq), e.Time.UTC()
		if detail != nil {
			e.Detail = json.RawMessage(*detail)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (tx *Tx) AuditHashes(ctx context.Context, from int64, limit int) ([]daoguard.AuditHash, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT idx, hash FROM audit_hash WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.AuditHash
	for rows.Next() {
		var h daoguard.AuditHash
		var b []byte
		if err := rows.Scan(&h.Index, &b); err != nil {
			return nil, err
		}
		if len(b) != len(h.Hash) {
			return nil, fmt.Errorf("audit hash %d is %d bytes", h.Index, len(b))
		}
		copy(h.Hash[:], b)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (tx *Tx) AuditHashCount(ctx context.Context) (int64, error) {
	var n int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT COUNT(*) FROM audit_hash`).Scan(&n)
	return n, err
}

func (tx *Tx) AuditSize(ctx context.Context) (uint64, error) {
	var n int64
	err := tx.q.QueryRow(tx.c(ctx), `SELECT next FROM audit_head`).Scan(&n)
	return uint64(n), err
}

const credentialColumns = `key_id, principal_id, alg, public_key, sealed_secret, scopes, environment, created, expires_at, revoked_at, replaced_by, last_used`

func scanCredential(row pgx.Row) (*daoguard.Credential, error) {
	var c daoguard.Credential
	var scopes string
	var expires, revoked, used *time.Time
	if err := row.Scan(&c.KeyID, &c.PrincipalID, &c.Alg, &c.PublicKey, &c.SealedSecret, &scopes, &c.Environment, &c.Created, &expires, &revoked, &c.ReplacedBy, &used); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return nil, err
	}
	c.Created, c.ExpiresAt, c.RevokedAt, c.LastUsed = c.Created.UTC(), fromTS(expires), fromTS(revoked), fromTS(used)
	return &c, nil
}

func (tx *Tx) Credential(ctx context.Context, keyID string) (*daoguard.Credential, error) {
	c, err := scanCredential(tx.q.QueryRow(tx.c(ctx), `SELECT `+credentialColumns+` FROM credentials WHERE key_id = $1`, keyID))
	if err != nil {
		return nil, notFound(err, "credential", keyID)
	}
	return c, nil
}

func (tx *Tx) Credentials(ctx context.Context, orgID string) ([]*daoguard.Credential, error) {
	rows, err := tx.q.Query(tx.c(ctx), `SELECT `+credentialColumns+` FROM credentials
		WHERE principal_id IN (SELECT id FROM principals WHERE org_id = $1) ORDER BY created, key_id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (tx *Tx) PutCredential(ctx context.Context, c *daoguard.Credential) error {
	if c.Created.IsZero() {
		c.Created = tx.now
	}
	scopes, err := json.Marshal(append([]string{}, c.Scopes...))
	if err != nil {
		return err
	}
	_, err = tx.q.Exec(tx.c(ctx), `INSERT INTO credentials (key_id, principal_id, alg, public_key, sealed_secret, scopes, environment, created, expires_at, revoked_at, replaced_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (key_id) DO UPDATE SET scopes = excluded.scopes, sealed_secret = excluded.sealed_secret, expires_at = excluded.expires_at,
			revoked_at = excluded.revoked_at, replaced_by = excluded.replaced_by`,
		c.KeyID, c.PrincipalID, c.Alg, c.PublicKey, c.SealedSecret, string(scopes), c.Environment, c.Created, ts(c.ExpiresAt), ts(c.RevokedAt), c.ReplacedBy)
	return err
}

func (tx *Tx) TouchCredentials(ctx context.Context, used map[string]time.Time) error {
	for id, t := range used {
		if _, err := tx.q.Exec(tx.c(ctx), `UPDATE credentials SET last_used = $1 WHERE key_id = $2 AND (last_used IS NULL OR last_used < $1)`, t, id); err != nil {
			return err
		}
	}
	return nil
}

func (tx *Tx) UseNonce(ctx context.Context, keyID, nonce string, created, expires time.Time) error {
	tag, err := tx.q.Exec(tx.c(ctx), `INSERT INTO nonces (created, key_id, nonce, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, created.Unix(), keyID, nonce, expires)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return daoguard.ErrNonceReused
	}
	return nil
}

func (tx *Tx) PurgeNonces(ctx context.Context, before time.Time) (int64, error) {
	tag, err := tx.q.Exec(tx.c(ctx), `DELETE FROM nonces WHERE created < $1 AND expires_at < $2`, before.Unix()+1, before)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// kindFilter is ActionFilter.Kind as the query's parameter: "" for any.
func kindFilter(k daoguard.ActionKind) string {
	if k == 0 {
		return ""
	}
	return k.String()
}
