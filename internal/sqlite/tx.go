package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/sqlrow"
)

// Tx is one unit of work inside a batch (Update) or a read snapshot (View).
type Tx struct {
	q        querier
	now      time.Time
	seq      uint64 // next audit position; advanced by Append
	readonly bool
	// cache serves credentials and principals to read-only transactions;
	// gen is the cache generation when this one began. Writers list what
	// they changed in dirty*, dropped from the cache after COMMIT.
	cache                       *readCache
	gen                         uint64
	dirtyCreds, dirtyPrincipals []string
	// wc serves the writer's reads of organisations, principals, accounts
	// and assets; nil in read-only transactions.
	wc *writerCache
	// undo restores the fields this unit set on its callers' objects
	// (versions, timestamps) when its writes do not commit.
	undo []func()
	// after runs once the unit's writes have committed (AfterCommit).
	after []func()
	// appended are the unit's audit entries, as inserted: the batch hashes
	// them into the Merkle tree before it commits.
	appended []*daoguard.AuditEntry
}

// undoAll runs undo functions, newest first.
func undoAll(fs []func()) {
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

var _ daoguard.Tx = (*Tx)(nil)

// Now is the single time of this unit of work.
func (tx *Tx) Now() time.Time { return tx.now }

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func notFound(err error, what, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return daoguard.Errorf(daoguard.CodeNotFound, "%s %s not found", what, id)
	}
	return err
}

func (tx *Tx) Org(ctx context.Context, id string) (*daoguard.Organisation, error) {
	if tx.wc != nil {
		if o := tx.wc.orgs.get(id); o != nil {
			return o, nil
		}
	}
	var o daoguard.Organisation
	var paused int
	var pausedAt, created int64
	err := tx.q.QueryRowContext(ctx, `SELECT id, name, paused, paused_by, paused_at, created FROM orgs WHERE id = ?`, id).
		Scan(&o.ID, &o.Name, &paused, &o.PausedBy, &pausedAt, &created)
	if err != nil {
		return nil, notFound(err, "organisation", id)
	}
	o.Paused, o.PausedAt, o.Created = paused != 0, fromMicros(pausedAt), fromMicros(created)
	if tx.wc != nil {
		tx.wc.orgs.fill(id, &o)
	}
	return &o, nil
}

// OrgForUpdate is Org: SQLite's single writer already excludes every other
// unit of work while this one runs.
func (tx *Tx) OrgForUpdate(ctx context.Context, id string) (*daoguard.Organisation, error) {
	return tx.Org(ctx, id)
}

func (tx *Tx) PutOrg(ctx context.Context, o *daoguard.Organisation) error {
	if tx.wc != nil {
		tx.wc.orgs.drop(o.ID)
	}
	if o.Created.IsZero() {
		o.Created = tx.now
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO orgs (id, name, paused, paused_by, paused_at, created) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at`,
		o.ID, o.Name, o.Paused, o.PausedBy, micros(o.PausedAt), micros(o.Created))
	return err
}

func (tx *Tx) Principal(ctx context.Context, id string) (*daoguard.Principal, error) {
	if tx.wc != nil {
		if p := tx.wc.principals.get(id); p != nil {
			return p, nil
		}
		p, err := tx.principal(ctx, id)
		if err == nil {
			tx.wc.principals.fill(id, p)
		}
		return p, err
	}
	if tx.cache != nil {
		if p := tx.cache.principal(id); p != nil {
			return p, nil
		}
	}
	p, err := tx.principal(ctx, id)
	if err == nil && tx.cache != nil {
		tx.cache.fillPrincipal(tx.gen, p)
	}
	return p, err
}

func (tx *Tx) principal(ctx context.Context, id string) (*daoguard.Principal, error) {
	var p daoguard.Principal
	var kind, roles, autonomy string
	var created, updated int64
	err := tx.q.QueryRowContext(ctx, `SELECT id, org_id, kind, name, roles, autonomy, created, updated FROM principals WHERE id = ?`, id).
		Scan(&p.ID, &p.OrgID, &kind, &p.Name, &roles, &autonomy, &created, &updated)
	if err != nil {
		return nil, notFound(err, "principal", id)
	}
	if err := sqlrow.DecodePrincipal(&p, kind, roles, autonomy); err != nil {
		return nil, err
	}
	p.Created, p.Updated = fromMicros(created), fromMicros(updated)
	return &p, nil
}

func (tx *Tx) Principals(ctx context.Context, orgID string) ([]*daoguard.Principal, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT id, org_id, kind, name, roles, autonomy, created, updated FROM principals WHERE org_id = ? ORDER BY created, id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*daoguard.Principal
	for rows.Next() {
		var p daoguard.Principal
		var kind, roles, autonomy string
		var created, updated int64
		if err := rows.Scan(&p.ID, &p.OrgID, &kind, &p.Name, &roles, &autonomy, &created, &updated); err != nil {
			return nil, err
		}
		if err := sqlrow.DecodePrincipal(&p, kind, roles, autonomy); err != nil {
			return nil, err
		}
		p.Created, p.Updated = fromMicros(created), fromMicros(updated)
		out = append(out, &p)
	}
	return out, rows.Err()
}

// PrincipalForUpdate is Principal (see OrgForUpdate).
func (tx *Tx) PrincipalForUpdate(ctx context.Context, id string) (*daoguard.Principal, error) {
	return tx.Principal(ctx, id)
}

func (tx *Tx) PutPrincipal(ctx context.Context, p *daoguard.Principal) error {
	tx.dirtyPrincipals = append(tx.dirtyPrincipals, p.ID)
	if tx.wc != nil {
		tx.wc.principals.drop(p.ID)
	}
	if p.Created.IsZero() {
		p.Created = tx.now
	}
	p.Updated = tx.now
	_, err := tx.q.ExecContext(ctx, `INSERT INTO principals (id, org_id, kind, name, roles, autonomy, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, roles = excluded.roles, autonomy = excluded.autonomy, updated = excluded.updated`,
		p.ID, p.OrgID, p.Kind.String(), p.Name, sqlrow.RolesText(p), sqlrow.AutonomyText(p), micros(p.Created), micros(p.Updated))
	return err
}

func (tx *Tx) Account(ctx context.Context, orgID, name string) (*daoguard.Account, error) {
	if tx.wc != nil {
		if a := tx.wc.accounts.get(pairKey(orgID, name)); a != nil {
			return a, nil
		}
	}
	var a daoguard.Account
	var kind string
	err := tx.q.QueryRowContext(ctx, `SELECT org_id, name, chain_id, address, kind FROM accounts WHERE org_id = ? AND name = ?`, orgID, name).
		Scan(&a.OrgID, &a.Name, &a.ChainID, &a.Address, &kind)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.FieldError(daoguard.CodeUnknownAccount, "account", "no account named %q", name)
	} else if err != nil {
		return nil, err
	}
	if a.Kind, err = daoguard.ParseAccountKind(kind); err != nil {
		return nil, err
	}
	if tx.wc != nil {
		tx.wc.accounts.fill(pairKey(orgID, name), &a)
	}
	return &a, nil
}

func (tx *Tx) PutAccount(ctx context.Context, a *daoguard.Account) error {
	if tx.wc != nil {
		tx.wc.accounts.drop(pairKey(a.OrgID, a.Name))
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO accounts (org_id, name, chain_id, address, kind) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org_id, name) DO UPDATE SET chain_id = excluded.chain_id, address = excluded.address, kind = excluded.kind`,
		a.OrgID, a.Name, a.ChainID, a.Address, a.Kind.String())
	return err
}

func (tx *Tx) Asset(ctx context.Context, orgID, symbol string) (*daoguard.Asset, error) {
	if tx.wc != nil {
		if a := tx.wc.assets.get(pairKey(orgID, symbol)); a != nil {
			return a, nil
		}
	}
	var a daoguard.Asset
	err := tx.q.QueryRowContext(ctx, `SELECT org_id, symbol, chain_id, address, decimals FROM assets WHERE org_id = ? AND symbol = ?`, orgID, symbol).
		Scan(&a.OrgID, &a.Symbol, &a.ChainID, &a.Address, &a.Decimals)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, daoguard.FieldError(daoguard.CodeUnknownAsset, "asset", "no asset with symbol %q", symbol)
	} else if err != nil {
		return nil, err
	}
	if tx.wc != nil {
		tx.wc.assets.fill(pairKey(orgID, symbol), &a)
	}
	return &a, nil
}

func (tx *Tx) PutAsset(ctx context.Context, a *daoguard.Asset) error {
	if tx.wc != nil {
		tx.wc.assets.drop(pairKey(a.OrgID, a.Symbol))
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO assets (org_id, symbol, chain_id, address, decimals) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org_id, symbol) DO UPDATE SET chain_id = excluded.chain_id, address = excluded.address, decimals = excluded.decimals`,
		a.OrgID, a.Symbol, a.ChainID, a.Address, a.Decimals)
	return err
}

const actionColumns = `id, org_id, principal_id, COALESCE(idempotency_key, ''), request_hash, state, intent, decoded, decision,
	runnable_at, expires_at, attempt, lease_owner, lease_until, result, version, created, updated`

func scanAction(s scanner) (*daoguard.Action, error) {
	var a daoguard.Action
	var r sqlrow.Action
	var runnable, expires, lease, created, updated int64
	var result sql.NullString
	err := s.Scan(&a.ID, &a.OrgID, &a.PrincipalID, &a.IdempotencyKey, &a.RequestHash, &r.State, &r.Intent, &r.Decoded, &r.Decision,
		&runnable, &expires, &a.Attempt, &a.LeaseOwner, &lease, &result, &a.Version, &created, &updated)
	if err != nil {
		return nil, err
	}
	r.Result = []byte(result.String)
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	a.RunnableAt, a.ExpiresAt, a.LeaseUntil = fromMicros(runnable), fromMicros(expires), fromMicros(lease)
	a.Created, a.Updated = fromMicros(created), fromMicros(updated)
	return &a, nil
}

// Action reads one action. SQLite has a single writer, so the row cannot
// change under an Update until it commits: no explicit lock is needed.
func (tx *Tx) Action(ctx context.Context, id string) (*daoguard.Action, error) {
	a, err := scanAction(tx.q.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "action", id)
	}
	return a, nil
}

func (tx *Tx) ActionByIdempotencyKey(ctx context.Context, principalID, key string) (*daoguard.Action, error) {
	a, err := scanAction(tx.q.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE principal_id = ? AND idempotency_key = ?`, principalID, key))
	if err != nil {
		return nil, notFound(err, "action with idempotency key", key)
	}
	return a, nil
}

func (tx *Tx) CreateAction(ctx context.Context, a *daoguard.Action) error {
	r, err := sqlrow.Encode(a)
	if err != nil {
		return err
	}
	v, c, u := a.Version, a.Created, a.Updated
	tx.undo = append(tx.undo, func() { a.Version, a.Created, a.Updated = v, c, u })
	a.Version, a.Created, a.Updated = 1, tx.now, tx.now
	res, err := tx.q.ExecContext(ctx, `INSERT INTO actions (id, org_id, principal_id, idempotency_key, request_hash, state, intent, decoded, decision,
		runnable_at, expires_at, attempt, lease_owner, lease_until, result, version, created, updated, kind)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (principal_id, idempotency_key) DO NOTHING`,
		a.ID, a.OrgID, a.PrincipalID, sqlrow.Nullable(a.IdempotencyKey), a.RequestHash, r.State, r.Intent, r.Decoded, r.Decision,
		micros(a.RunnableAt), micros(a.ExpiresAt), a.Attempt, a.LeaseOwner, micros(a.LeaseUntil), r.NullResult(), a.Version, micros(a.Created), micros(a.Updated), a.Decoded.Kind.String())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return daoguard.ErrIdempotencyKeyUsed
	}
	return nil
}

func (tx *Tx) UpdateAction(ctx context.Context, a *daoguard.Action) error {
	r, err := sqlrow.EncodeMutable(a)
	if err != nil {
		return err
	}
	res, err := tx.q.ExecContext(ctx, `UPDATE actions SET state = ?, decision = ?, runnable_at = ?, expires_at = ?,
		attempt = ?, lease_owner = ?, lease_until = ?, result = ?, version = version + 1, updated = ?
		WHERE id = ? AND version = ?`,
		r.State, r.Decision, micros(a.RunnableAt), micros(a.ExpiresAt), a.Attempt, a.LeaseOwner, micros(a.LeaseUntil),
		r.NullResult(), micros(tx.now), a.ID, a.Version)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := tx.Action(ctx, a.ID); err != nil {
			return err
		}
		return daoguard.Errorf(daoguard.CodeConflict, "action %s was changed concurrently", a.ID)
	}
	v, u := a.Version, a.Updated
	tx.undo = append(tx.undo, func() { a.Version, a.Updated = v, u })
	a.Version++
	a.Updated = tx.now
	return nil
}

func (tx *Tx) FindActions(ctx context.Context, f daoguard.ActionFilter) ([]*daoguard.Action, error) {
	var where []string
	var args []any
	add := func(cond string, v ...any) { where = append(where, cond); args = append(args, v...) }
	if f.OrgID != "" {
		add("org_id = ?", f.OrgID)
	}
	if f.PrincipalID != "" {
		add("principal_id = ?", f.PrincipalID)
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, s := range f.States {
			ph[i] = "?"
			args = append(args, s.String())
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	// 0 is an unset time (NULL on PostgreSQL): it never matches.
	if !f.RunnableBy.IsZero() {
		add("runnable_at > 0 AND runnable_at <= ?", micros(f.RunnableBy))
	}
	if !f.ExpiresBy.IsZero() {
		add("expires_at > 0 AND expires_at <= ?", micros(f.ExpiresBy))
	}
	if !f.LeaseEndedBy.IsZero() {
		add("lease_until > 0 AND lease_until <= ?", micros(f.LeaseEndedBy))
	}
	if f.NotPaused {
		add("org_id NOT IN (SELECT id FROM orgs WHERE paused)")
	}
	if f.Paused {
		add("org_id IN (SELECT id FROM orgs WHERE paused)")
	}
	if f.Kind != 0 {
		add("kind = ?", f.Kind.String())
	}
	cmp, order := ">", "id"
	if f.Newest {
		cmp, order = "<", "id DESC"
	}
	if f.AfterID != "" {
		add("id "+cmp+" ?", f.AfterID)
	}
	q := `SELECT ` + actionColumns + ` FROM actions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order + " LIMIT ?"
	args = append(args, sqlrow.Limit(f.Limit))
	rows, err := tx.q.QueryContext(ctx, q, args...)
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
		out = append(out, a)
	}
	return out, rows.Err()
}

func (tx *Tx) AddApproval(ctx context.Context, ap *daoguard.Approval) error {
	if ap.Created.IsZero() {
		ap.Created = tx.now
	}
	res, err := tx.q.ExecContext(ctx, `INSERT INTO approvals (action_id, principal_id, approve, signature, comment, created) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (action_id, principal_id) DO NOTHING`,
		ap.ActionID, ap.PrincipalID, ap.Approve, ap.Signature, ap.Comment, micros(ap.Created))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return sqlrow.ErrDuplicateApproval(ap.PrincipalID)
	}
	return nil
}

func (tx *Tx) Approvals(ctx context.Context, actionID string) ([]daoguard.Approval, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT action_id, principal_id, approve, signature, comment, created FROM approvals WHERE action_id = ? ORDER BY created, principal_id`, actionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.Approval
	for rows.Next() {
		var ap daoguard.Approval
		var created int64
		if err := rows.Scan(&ap.ActionID, &ap.PrincipalID, &ap.Approve, &ap.Signature, &ap.Comment, &created); err != nil {
			return nil, err
		}
		ap.Created = fromMicros(created)
		out = append(out, ap)
	}
	return out, rows.Err()
}

func (tx *Tx) Append(ctx context.Context, e *daoguard.AuditEntry) error {
	if tx.readonly {
		return daoguard.Errorf(daoguard.CodeInternal, "append in a read-only transaction")
	}
	e.Seq = tx.seq
	if e.Time.IsZero() {
		e.Time = tx.now
	}
	e.FromRequest(ctx)
	_, err := tx.q.ExecContext(ctx, `INSERT INTO audit (seq, time, org_id, actor_id, actor_kind, action_id, event, detail, key_id, request_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, micros(e.Time), e.OrgID, e.ActorID, e.ActorKind, e.ActionID, e.Event, sqlrow.NullJSON(e.Detail), e.KeyID, e.RequestDigest)
	if err != nil {
		return err
	}
	if e.Subject != "" {
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO audit_subject (subject, seq) VALUES (?, ?)`, e.Subject, e.Seq); err != nil {
			return err
		}
	}
	// What the row holds, for the tree: the time at the column's precision.
	c := *e
	c.Time = fromMicros(micros(e.Time))
	c.Detail = bytes.Clone(e.Detail) // hashed at the batch's end: the caller may reuse its buffer
	tx.appended = append(tx.appended, &c)
	tx.seq++
	return nil
}

func (tx *Tx) AuditEntries(ctx context.Context, from uint64, limit int) ([]daoguard.AuditEntry, error) {
	return tx.auditQuery(ctx, `seq >= ?`, from, sqlrow.Limit(limit))
}

func (tx *Tx) ActionAudit(ctx context.Context, actionID string) ([]daoguard.AuditEntry, error) {
	return tx.auditQuery(ctx, `action_id = ?`, actionID, daoguard.MaxFindLimit)
}

func (tx *Tx) SubjectAudit(ctx context.Context, principalID string, limit int) ([]daoguard.AuditEntry, error) {
	n := sqlrow.Limit(limit)
	return tx.auditQuery(ctx, fmt.Sprintf(`seq IN (SELECT seq FROM audit_subject WHERE subject = ? ORDER BY seq DESC LIMIT %d)`, n), principalID, n)
}

func (tx *Tx) auditQuery(ctx context.Context, where string, arg any, limit int) ([]daoguard.AuditEntry, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT seq, time, org_id, actor_id, actor_kind, action_id, event, detail, key_id, request_digest FROM audit WHERE `+where+` ORDER BY seq LIMIT ?`, arg, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []daoguard.AuditEntry
	for rows.Next() {
		var e daoguard.AuditEntry
		var t int64
		var detail sql.NullString
		if err := rows.Scan(&e.Seq, &t, &e.OrgID, &e.ActorID, &e.ActorKind, &e.ActionID, &e.Event, &detail, &e.KeyID, &e.RequestDigest); err != nil {
			return nil, err
		}
		e.Time = fromMicros(t)
		if detail.Valid {
			e.Detail = json.RawMessage(detail.String)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (tx *Tx) AuditHashes(ctx context.Context, from int64, limit int) ([]daoguard.AuditHash, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT idx, hash FROM audit_hash WHERE idx >= ? ORDER BY idx LIMIT ?`, from, limit)
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
	err := tx.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_hash`).Scan(&n)
	return n, err
}

func (tx *Tx) AuditSize(ctx context.Context) (uint64, error) {
	var n uint64
	err := tx.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq) + 1, 0) FROM audit`).Scan(&n)
	return n, err
}

const credentialColumns = `key_id, principal_id, alg, public_key, sealed_secret, scopes, environment, created, expires_at, revoked_at, replaced_by, last_used`

func scanCredential(row interface{ Scan(...any) error }) (*daoguard.Credential, error) {
	var c daoguard.Credential
	var scopes string
	var created, expires, revoked, used int64
	if err := row.Scan(&c.KeyID, &c.PrincipalID, &c.Alg, &c.PublicKey, &c.SealedSecret, &scopes, &c.Environment, &created, &expires, &revoked, &c.ReplacedBy, &used); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return nil, err
	}
	c.Created, c.ExpiresAt, c.RevokedAt, c.LastUsed = fromMicros(created), fromMicros(expires), fromMicros(revoked), fromMicros(used)
	return &c, nil
}

func (tx *Tx) Credential(ctx context.Context, keyID string) (*daoguard.Credential, error) {
	if tx.cache != nil {
		if c := tx.cache.credential(keyID); c != nil {
			return c, nil
		}
	}
	c, err := scanCredential(tx.q.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE key_id = ?`, keyID))
	if err != nil {
		return nil, notFound(err, "credential", keyID)
	}
	if tx.cache != nil {
		tx.cache.fillCredential(tx.gen, c)
	}
	return c, nil
}

func (tx *Tx) Credentials(ctx context.Context, orgID string) ([]*daoguard.Credential, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials
		WHERE principal_id IN (SELECT id FROM principals WHERE org_id = ?) ORDER BY created, key_id`, orgID)
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
	tx.dirtyCreds = append(tx.dirtyCreds, c.KeyID)
	if c.Created.IsZero() {
		c.Created = tx.now
	}
	scopes, err := json.Marshal(append([]string{}, c.Scopes...))
	if err != nil {
		return err
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO credentials (key_id, principal_id, alg, public_key, sealed_secret, scopes, environment, created, expires_at, revoked_at, replaced_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET scopes = excluded.scopes, sealed_secret = excluded.sealed_secret, expires_at = excluded.expires_at,
			revoked_at = excluded.revoked_at, replaced_by = excluded.replaced_by`,
		c.KeyID, c.PrincipalID, c.Alg, c.PublicKey, c.SealedSecret, string(scopes), c.Environment, micros(c.Created), micros(c.ExpiresAt), micros(c.RevokedAt), c.ReplacedBy)
	return err
}

func (tx *Tx) TouchCredentials(ctx context.Context, used map[string]time.Time) error {
	for id, t := range used {
		tx.dirtyCreds = append(tx.dirtyCreds, id)
		if _, err := tx.q.ExecContext(ctx, `UPDATE credentials SET last_used = ? WHERE key_id = ? AND last_used < ?`, micros(t), id, micros(t)); err != nil {
			return err
		}
	}
	return nil
}

func (tx *Tx) UseNonce(ctx context.Context, keyID, nonce string, created, expires time.Time) error {
	res, err := tx.q.ExecContext(ctx, `INSERT INTO nonces (created, key_id, nonce, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, created.Unix(), keyID, nonce, micros(expires))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return daoguard.ErrNonceReused
	}
	return nil
}

func (tx *Tx) PurgeNonces(ctx context.Context, before time.Time) (int64, error) {
	// created < expires_at, so the first condition (a range of the primary
	// key) is implied by the second and lets SQLite skip the recent rows.
	res, err := tx.q.ExecContext(ctx, `DELETE FROM nonces WHERE created < ? AND expires_at < ?`, before.Unix()+1, micros(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
