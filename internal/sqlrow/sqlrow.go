// Package sqlrow holds the row encoding that both SQL stores share: how an
// action's structured parts become JSON columns and back, and the errors
// both return the same way. It keeps the two stores from drifting apart.
package sqlrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"sort"
	"strconv"

	"github.com/daoguard/daoguard"
)

// Action is the column form of an action's structured fields.
type Action struct {
	State    string
	Intent   []byte
	Decoded  []byte
	Decision []byte
	Result   []byte // nil: no result yet
}

// Encode turns a's structured fields into column values for an insert.
func Encode(a *daoguard.Action) (Action, error) {
	r, err := EncodeMutable(a)
	if err != nil {
		return r, err
	}
	if r.Intent, err = json.Marshal(a.Intent); err != nil {
		return r, err
	}
	r.Decoded, err = json.Marshal(a.Decoded)
	return r, err
}

// EncodeMutable encodes only the fields an update may change.
func EncodeMutable(a *daoguard.Action) (Action, error) {
	if !a.State.Valid() {
		return Action{}, fmt.Errorf("action %s has invalid state %d", a.ID, uint8(a.State))
	}
	r := Action{State: a.State.String()}
	var err error
	if r.Decision, err = json.Marshal(a.Decision); err != nil {
		return r, err
	}
	if a.Result != nil {
		if r.Result, err = json.Marshal(a.Result); err != nil {
			return r, err
		}
	}
	return r, nil
}

// NullResult returns the result column value: nil (SQL NULL) or JSON text.
func (r Action) NullResult() any {
	if r.Result == nil {
		return nil
	}
	return string(r.Result)
}

// Decode fills a's structured fields from column values.
func (r Action) Decode(a *daoguard.Action) error {
	var err error
	if a.State, err = daoguard.ParseState(r.State); err != nil {
		return err
	}
	if err := json.Unmarshal(r.Intent, &a.Intent); err != nil {
		return fmt.Errorf("action %s intent: %w", a.ID, err)
	}
	if err := json.Unmarshal(r.Decoded, &a.Decoded); err != nil {
		return fmt.Errorf("action %s decoded: %w", a.ID, err)
	}
	if err := json.Unmarshal(r.Decision, &a.Decision); err != nil {
		return fmt.Errorf("action %s decision: %w", a.ID, err)
	}
	if len(r.Result) > 0 {
		a.Result = new(daoguard.ExecResult)
		if err := json.Unmarshal(r.Result, a.Result); err != nil {
			return fmt.Errorf("action %s result: %w", a.ID, err)
		}
	}
	return nil
}

// DecodePrincipal fills the enum and list fields of p from column text.
func DecodePrincipal(p *daoguard.Principal, kind, roles, autonomy string) error {
	var err error
	if p.Kind, err = daoguard.ParsePrincipalKind(kind); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(roles), &p.Roles); err != nil {
		return fmt.Errorf("principal %s roles: %w", p.ID, err)
	}
	if autonomy != "" {
		if p.Autonomy, err = daoguard.ParseAutonomy(autonomy); err != nil {
			return err
		}
	}
	return nil
}

// RolesText is the roles column value: a JSON array.
func RolesText(p *daoguard.Principal) string {
	b, _ := json.Marshal(append([]string{}, p.Roles...)) // cannot fail: strings only
	return string(b)
}

// AutonomyText is the autonomy column value: "" for humans.
func AutonomyText(p *daoguard.Principal) string {
	if !p.Autonomy.Valid() {
		return ""
	}
	return p.Autonomy.String()
}

// NullJSON returns nil (SQL NULL) for empty JSON, else its text.
func NullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// Limit clamps a requested page size.
func Limit(n int) int {
	switch {
	case n <= 0:
		return daoguard.DefaultFindLimit
	case n > daoguard.MaxFindLimit:
		return daoguard.MaxFindLimit
	}
	return n
}

// ErrDuplicateApproval is the error for a second vote by one human.
func ErrDuplicateApproval(principalID string) error {
	return daoguard.Errorf(daoguard.CodeDuplicateApproval, "%s has already voted on this action", principalID)
}

// Schema is what Migrate needs from a store, in the store's own dialect,
// all inside the one transaction the migration runs in.
type Schema struct {
	HasMeta     func() (bool, error)             // whether the meta table exists yet
	Meta        func(key string) (string, error) // a value of the meta table
	Exec        func(sql string) error
	SetVersions func(schema int) error // record schema_version and the binary's data_version
}

// Migrate checks the store's data version (INCOMPATIBLE_STORE if it is
// newer than this binary) and applies the migrations in dir it lacks.
func Migrate(fsys fs.FS, dir string, s Schema) error {
	has, err := s.HasMeta()
	if err != nil {
		return err
	}
	applied := 0
	if has {
		dv, err := s.Meta("data_version")
		if err != nil {
			return fmt.Errorf("read data version: %w", err)
		}
		if err := CheckDataVersion(dv); err != nil {
			return err
		}
		sv, err := s.Meta("schema_version")
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		applied, _ = strconv.Atoi(sv)
	}
	pending, err := Migrations(fsys, dir, applied)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if err := s.Exec(m.SQL); err != nil {
			return fmt.Errorf("migration %d: %w", m.Version, err)
		}
		if err := s.SetVersions(m.Version); err != nil {
			return err
		}
	}
	return nil
}

// CheckCurrent checks, without writing, that the store is one this binary
// reads as it is: its data version readable, no migration pending, and its
// audit tree built. A read-only opening (the offline verifier) uses it
// instead of Migrate.
func CheckCurrent(fsys fs.FS, dir string, s Schema) error {
	has, err := s.HasMeta()
	if err != nil {
		return err
	}
	if !has {
		return daoguard.Errorf(daoguard.CodeIncompatibleStore, "not a daoguard store (no meta table)")
	}
	behind := &daoguard.Error{Code: daoguard.CodeIncompatibleStore, Message: "the store was written by an older daoguard and is not migrated yet",
		Hint: "run any other daoguard command on it (or serve) once to migrate it, then verify"}
	err = Migrate(fsys, dir, Schema{HasMeta: s.HasMeta, Meta: s.Meta,
		Exec:        func(string) error { return behind },
		SetVersions: func(int) error { return behind },
	})
	if err != nil {
		var de *daoguard.Error
		if errors.As(err, &de) {
			return de
		}
		return err
	}
	if tree, err := s.Meta("audit_tree"); err != nil || tree != "complete" {
		return behind
	}
	return nil
}

// Nullable maps "" to SQL NULL.
func Nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Migration is one numbered schema change.
type Migration struct {
	Version int
	SQL     string
}

// Migrations lists the *.sql files of dir in fsys, in name order, numbered
// from 1, and returns those after version applied.
func Migrations(fsys fs.FS, dir string, applied int) ([]Migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for i, name := range names {
		if v := i + 1; v > applied {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, err
			}
			out = append(out, Migration{Version: v, SQL: string(b)})
		}
	}
	return out, nil
}

// CheckDataVersion refuses a store written by a newer daoguard, before
// anything in it is touched. Errors: INCOMPATIBLE_STORE.
func CheckDataVersion(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return daoguard.Errorf(daoguard.CodeIncompatibleStore, "store has an unreadable data version %q", s)
	}
	if v > daoguard.DataVersion {
		return &daoguard.Error{Code: daoguard.CodeIncompatibleStore,
			Message: fmt.Sprintf("store data version %d is newer than this daoguard reads (%d)", v, daoguard.DataVersion),
			Hint:    "run a daoguard release at least as new as the one that wrote this store"}
	}
	return nil
}

// FlowsJSON encodes a ledger entry's flows; none is an empty list, never
// null.
func FlowsJSON(fs []daoguard.Flow) ([]byte, error) {
	if fs == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(fs)
}

// Rows is what both drivers' result sets offer.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// SumReserved adds up (asset, amount) rows by asset. An amount that is not
// a non-negative integer is an error: a reservation that cannot be read
// must not be read as nothing.
func SumReserved(rows Rows) (map[string]*big.Int, error) {
	out := map[string]*big.Int{}
	for rows.Next() {
		var asset, amount string
		if err := rows.Scan(&asset, &amount); err != nil {
			return nil, err
		}
		v, ok := new(big.Int).SetString(amount, 10)
		if !ok || v.Sign() < 0 {
			return nil, fmt.Errorf("reservation of %s holds %q, not an amount", asset, amount)
		}
		if t := out[asset]; t != nil {
			t.Add(t, v)
		} else {
			out[asset] = v
		}
	}
	return out, rows.Err()
}

// RolesJSON encodes a ledger entry's roles: "" for none (the column's
// default, as entries written before roles were recorded have it).
func RolesJSON(roles []string) string {
	if len(roles) == 0 {
		return ""
	}
	b, _ := json.Marshal(roles) // strings: cannot fail
	return string(b)
}

// ParseRoles reads RolesJSON's form.
func ParseRoles(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("ledger roles %q: %w", s, err)
	}
	return out, nil
}
