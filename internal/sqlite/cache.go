package sqlite

import (
	"slices"
	"sync"

	"github.com/daoguard/daoguard"
)

// readCache keeps credentials and principals for read-only transactions:
// every signed request reads both, and they change rarely. It is exact, not
// a TTL: this process is the only writer of the file (serve holds a lock on
// the data directory), so every change passes through commit, which drops
// the changed entries after COMMIT and bumps gen.
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
