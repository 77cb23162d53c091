package sqlite

import (
	"golang.org/x/mod/sumdb/tlog"
	"slices"
	"strconv"
	"sync"

	"github.com/daoguard/daoguard"
)

// readCache keeps credentials and principals for read-only transactions:
// every signed request reads both, and they change rarely. It is exact, not
// a TTL: this process is the only writer of the file (serve holds a lock on
// the data directory), so every change passes through commit, which drops
// the changed entries after COMMIT and bumps gen. (If another process did
// write the file, the writer notices at its next batch and empties this
// cache; reads before that batch may be stale, which is why serve takes
// the lock.)
//
// A reader records gen before its transaction starts and fills the cache
// only if gen is unchanged afterwards. A value read from a snapshot older
// than some commit was therefore read by a reader that started before that
// commit's bump, and is never filled in: a revoked key cannot be served
// from the cache after the revocation committed.
type readCache struct {
	mu         sync.Mutex
	gen        uint64
	creds      map[string]*daoguard.Credential
	principals map[string]*daoguard.Principal
}

// maxCachedRows bounds each map; when full it is emptied (simple, and refills
// cost one read each).
const maxCachedRows = 10_000

func newReadCache() *readCache {
	return &readCache{creds: map[string]*daoguard.Credential{}, principals: map[string]*daoguard.Principal{}}
}

func (c *readCache) generation() uint64 { c.mu.Lock(); defer c.mu.Unlock(); return c.gen }

func (c *readCache) credential(id string) *daoguard.Credential {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.creds[id]; ok {
		return cloneCredential(v)
	}
	return nil
}

func (c *readCache) principal(id string) *daoguard.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.principals[id]; ok {
		return clonePrincipal(v)
	}
	return nil
}

func (c *readCache) fillCredential(gen uint64, v *daoguard.Credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.creds) >= maxCachedRows {
		clear(c.creds)
	}
	c.creds[v.KeyID] = cloneCredential(v)
}

func (c *readCache) fillPrincipal(gen uint64, v *daoguard.Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.principals) >= maxCachedRows {
		clear(c.principals)
	}
	c.principals[v.ID] = clonePrincipal(v)
}

// invalidateAll drops every entry: another connection changed the file.
func (c *readCache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.creds)
	clear(c.principals)
}

// invalidate runs after a batch's COMMIT (or its failure).
func (c *readCache) invalidate(creds, principals []string) {
	if len(creds) == 0 && len(principals) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range creds {
		delete(c.creds, id)
	}
	for _, id := range principals {
		delete(c.principals, id)
	}
}

func cloneCredential(v *daoguard.Credential) *daoguard.Credential {
	out := *v
	out.Scopes, out.PublicKey, out.SealedSecret = slices.Clone(v.Scopes), slices.Clone(v.PublicKey), slices.Clone(v.SealedSecret)
	return &out
}

func clonePrincipal(v *daoguard.Principal) *daoguard.Principal {
	out := *v
	out.Roles = slices.Clone(v.Roles)
	return &out
}

// writerCache serves the writer's own reads of the rows every submission
// reads and that rarely change: organisations, principals, accounts and
// assets (four reads per submission otherwise). Only the writer goroutine
// uses it, so it needs no lock.
//
// It is exact. Changes made by this writer pass through Put, and a change
// committed by another connection (a second process on the same file:
// tests do it, serve's lock on the data directory prevents it in
// production) moves SQLite's data_version, which the writer checks at the
// start of every batch and then empties the cache. For uncommitted state
// there is one more rule: a Put drops
// the row and marks it dirty until the batch ends, and a dirty row is
// never filled in again within the batch. What the database returns for
// it may be a write that ROLLBACK TO (the unit failed) or ROLLBACK (the
// batch failed) undoes; a row that is not dirty reads as committed.
type writerCache struct {
	dataVersion int64 // PRAGMA data_version when the cache was last known good
	orgs        rowCache[daoguard.Organisation]
	principals  rowCache[daoguard.Principal]
	accounts    rowCache[daoguard.Account]
	assets      rowCache[daoguard.Asset]
	// tree is the right edge of the audit tree as of the last commit, so
	// that a batch need not read it back; invalid after a reset.
	tree treeEdge
}

// treeEdge is the right edge of an audit tree of size leaves, by
// stored-hash index.
type treeEdge struct {
	size   int64
	hashes map[int64]tlog.Hash
}

func newWriterCache() *writerCache {
	return &writerCache{
		orgs:       newRowCache(func(v *daoguard.Organisation) *daoguard.Organisation { out := *v; return &out }),
		principals: newRowCache(clonePrincipal),
		accounts:   newRowCache(func(v *daoguard.Account) *daoguard.Account { out := *v; return &out }),
		assets:     newRowCache(func(v *daoguard.Asset) *daoguard.Asset { out := *v; return &out }),
	}
}

// reset empties the cache.
func (c *writerCache) reset() {
	c.tree = treeEdge{}
	c.orgs.reset()
	c.principals.reset()
	c.accounts.reset()
	c.assets.reset()
}

// endBatch runs after every batch, committed or not.
func (c *writerCache) endBatch() {
	c.orgs.endBatch()
	c.principals.endBatch()
	c.accounts.endBatch()
	c.assets.endBatch()
}

// rowCache is one table's part of writerCache. Callers get clones: the
// service changes the rows it reads before writing them back.
type rowCache[T any] struct {
	rows  map[string]*T
	dirty map[string]bool
	clone func(*T) *T
}

func newRowCache[T any](clone func(*T) *T) rowCache[T] {
	return rowCache[T]{rows: map[string]*T{}, dirty: map[string]bool{}, clone: clone}
}

func (c *rowCache[T]) get(key string) *T {
	if v, ok := c.rows[key]; ok {
		return c.clone(v)
	}
	return nil
}

func (c *rowCache[T]) fill(key string, v *T) {
	if c.dirty[key] {
		return
	}
	if len(c.rows) >= maxCachedRows {
		clear(c.rows)
	}
	c.rows[key] = c.clone(v)
}

func (c *rowCache[T]) drop(key string) {
	delete(c.rows, key)
	c.dirty[key] = true
}

func (c *rowCache[T]) endBatch() { clear(c.dirty) }

func (c *rowCache[T]) reset() { clear(c.rows); clear(c.dirty) }

// pairKey is the cache key of a row keyed by (organisation, name). The
// length prefix keeps it unambiguous whatever bytes the two hold.
func pairKey(orgID, name string) string { return strconv.Itoa(len(orgID)) + ":" + orgID + name }
