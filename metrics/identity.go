package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a per-user mount (--identity per-user).
const (
	nameIdentities         = "bucketfs_identities"
	nameIdentityRefreshes  = "bucketfs_identity_credential_refreshes_total"
	nameIdentityDenied     = "bucketfs_identity_denied_total"
	nameIdentityReloads    = "bucketfs_identity_reloads_total"
	nameIdentityRules      = "bucketfs_identity_rules"
	identityRefreshOK      = "ok"
	identityRefreshFailure = "error"
)

// IdentityStats are the figures of a per-user mount's identities, read at
// every scrape: counts only, never a name of a key.
type IdentityStats struct {
	Rules           int
	InUse           int
	BySource        map[string]int
	Refreshes       int64
	RefreshFailures int64
	Denied          int64
	Reloads         int64
}

// identityCollector reads IdentityStats at each scrape.
type identityCollector struct {
	f atomic.Pointer[func() IdentityStats]
}

var (
	descIdentities = prometheus.NewDesc(nameIdentities, "Identities (user and rule) in use on a per-user mount, by source (role, profile, web-identity, host).", []string{"source"}, nil)
	descIDRefresh  = prometheus.NewDesc(nameIdentityRefreshes, "Credential retrievals of the identities of a per-user mount, by outcome.", []string{"result"}, nil)
	descIDDenied   = prometheus.NewDesc(nameIdentityDenied, "Requests refused with EACCES because the user has no identity.", nil, nil)
	descIDReloads  = prometheus.NewDesc(nameIdentityReloads, "Reloads of the identity rules (SIGHUP).", nil, nil)
	descIDRules    = prometheus.NewDesc(nameIdentityRules, "Rules in the identity rules file in force.", nil, nil)
)

func (c *identityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIdentities, descIDRefresh, descIDDenied, descIDReloads, descIDRules} {
		ch <- d
	}
}

func (c *identityCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.f.Load()
	if f == nil {
		return
	}
	s := (*f)()
	for src, n := range s.BySource {
		ch <- prometheus.MustNewConstMetric(descIdentities, prometheus.GaugeValue, float64(n), src)
	}
	ch <- prometheus.MustNewConstMetric(descIDRefresh, prometheus.CounterValue, float64(s.Refreshes), identityRefreshOK)
	ch <- prometheus.MustNewConstMetric(descIDRefresh, prometheus.CounterValue, float64(s.RefreshFailures), identityRefreshFailure)
	ch <- prometheus.MustNewConstMetric(descIDDenied, prometheus.CounterValue, float64(s.Denied))
	ch <- prometheus.MustNewConstMetric(descIDReloads, prometheus.CounterValue, float64(s.Reloads))
	ch <- prometheus.MustNewConstMetric(descIDRules, prometheus.GaugeValue, float64(s.Rules))
}

// SetIdentityStats makes the mount report its identities (a per-user
// mount); f is called at every scrape and status read.
func (m *Metrics) SetIdentityStats(f func() IdentityStats) {
	c := &identityCollector{}
	c.f.Store(&f)
	m.reg.MustRegister(c)
}

// IdentitySnapshot is the identities part of a Snapshot; nil on a mount
// with one identity.
type IdentitySnapshot struct {
	Rules           int            `json:"rules"`
	InUse           map[string]int `json:"in_use"` // by source
	Refreshes       int64          `json:"refreshes_ok"`
	RefreshFailures int64          `json:"refreshes_failed"`
	Denied          int64          `json:"denied"`
	Reloads         int64          `json:"reloads"`
}

// identityFamily folds one gathered family into s; false if it is not one
// of the identity metrics.
func (s *Snapshot) identityFamily(name string, value float64, l map[string]string) bool {
	switch name {
	case nameIdentities, nameIdentityRefreshes, nameIdentityDenied, nameIdentityReloads, nameIdentityRules:
	default:
		return false
	}
	if s.Identities == nil {
		s.Identities = &IdentitySnapshot{InUse: map[string]int{}}
	}
	id := s.Identities
	switch name {
	case nameIdentities:
		id.InUse[l["source"]] = int(value)
	case nameIdentityRefreshes:
		if l["result"] == identityRefreshOK {
			id.Refreshes = int64(value)
		} else {
			id.RefreshFailures = int64(value)
		}
	case nameIdentityDenied:
		id.Denied = int64(value)
	case nameIdentityReloads:
		id.Reloads = int64(value)
	case nameIdentityRules:
		id.Rules = int(value)
	}
	return true
}

// formatInUse is "3 (2 role, 1 profile)".
func formatInUse(by map[string]int) string {
	n := 0
	var parts []string
	for _, src := range slices.Sorted(maps.Keys(by)) {
		n += by[src]
		parts = append(parts, fmt.Sprintf("%d %s", by[src], src))
	}
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}
