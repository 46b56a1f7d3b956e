package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateFile holds the registry, the twins and the policy keys. It contains
// every key in plain form, so it is written 0600 in a 0700 directory.
const stateFile = "state.json"

// snapshotFormat is bumped when the file's shape changes incompatibly.
const snapshotFormat = 1

type snapshot struct {
	Format   int          `json:"format"`
	Policies []policy     `json:"policies"`
	Devices  []snapDevice `json:"devices"`
}

type snapDevice struct {
	ID           string    `json:"id"`
	PrimaryKey   string    `json:"primaryKey"`
	SecondaryKey string    `json:"secondaryKey"`
	Status       string    `json:"status"`
	StatusReason string    `json:"statusReason,omitempty"`
	StatusTime   time.Time `json:"statusTime"`
	GenerationID string    `json:"generationId"`
	ETag         int64     `json:"etag"`
	LastActivity time.Time `json:"lastActivity"`
	Twin         snapTwin  `json:"twin"`
}

type snapTwin struct {
	Version         int64     `json:"version"`
	DesiredVersion  int64     `json:"desiredVersion"`
	ReportedVersion int64     `json:"reportedVersion"`
	Tags            *snapNode `json:"tags"`
	Desired         *snapNode `json:"desired"`
	Reported        *snapNode `json:"reported"`
}

// snapNode mirrors tnode; Obj is null for leaves and an object (possibly
// empty) for objects.
type snapNode struct {
	Obj     map[string]*snapNode `json:"o"`
	Val     any                  `json:"v"`
	Updated time.Time            `json:"t"`
	Version int64                `json:"n,omitempty"`
}

func toSnap(n *tnode) *snapNode {
	s := &snapNode{Val: n.val, Updated: n.updated, Version: n.version}
	if n.obj != nil {
		s.Val = nil
		s.Obj = make(map[string]*snapNode, len(n.obj))
		for k, c := range n.obj {
			s.Obj[k] = toSnap(c)
		}
	}
	return s
}

func fromSnap(s *snapNode, now time.Time) *tnode {
	if s == nil {
		return newObject(now, 1)
	}
	n := &tnode{val: s.Val, updated: s.Updated, version: s.Version}
	if s.Obj != nil {
		n.val = nil
		n.obj = make(map[string]*tnode, len(s.Obj))
		for k, c := range s.Obj {
			if c != nil {
				n.obj[k] = fromSnap(c, now)
			}
		}
	}
	return n
}

// load restores policies, devices and twins from the data directory, or
// creates fresh policies when there is no snapshot yet.
func (h *Hub) load() error {
	path := filepath.Join(h.dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		h.policies = newPolicies()
		h.changed()
		if h.tempDir {
			return nil
		}
		return h.save()
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", stateFile, err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("read %s: %w (move the file away to start with an empty registry)", stateFile, err)
	}
	if snap.Format != snapshotFormat {
		return fmt.Errorf("read %s: format %d is not %d (move the file away to start with an empty registry)", stateFile, snap.Format, snapshotFormat)
	}
	h.policies = newPolicies()
	for _, p := range snap.Policies {
		if cur, ok := h.policies[p.Name]; ok && validKey(p.Primary) && validKey(p.Secondary) {
			cur.Primary, cur.Secondary = p.Primary, p.Secondary
		}
	}
	now := h.now()
	for _, sd := range snap.Devices {
		if validDeviceID(sd.ID) != nil || !validKey(sd.PrimaryKey) || !validKey(sd.SecondaryKey) {
			h.log.Warn("skipping an invalid device in the snapshot", "device", sd.ID)
			continue
		}
		d := newDevice(sd.ID, now)
		d.primaryKey, d.secondaryKey = sd.PrimaryKey, sd.SecondaryKey
		if sd.Status == "disabled" {
			d.status = "disabled"
		}
		d.statusReason, d.statusTime = sd.StatusReason, sd.StatusTime
		d.generationID, d.etag, d.lastActivity = sd.GenerationID, max(1, sd.ETag), sd.LastActivity
		d.connTime = now
		d.twin = twin{
			version:  max(1, sd.Twin.Version),
			tags:     fromSnap(sd.Twin.Tags, now),
			desired:  fromSnap(sd.Twin.Desired, now),
			reported: fromSnap(sd.Twin.Reported, now),
			desVer:   max(1, sd.Twin.DesiredVersion),
			repVer:   max(1, sd.Twin.ReportedVersion),
		}
		if err := h.reg.add(d); err != nil {
			h.log.Warn("skipping a duplicate device in the snapshot", "device", sd.ID)
		}
	}
	h.savedChange = h.changes.Load()
	return nil
}

// save writes a snapshot if anything changed since the last one. A
// temporary hub keeps nothing.
func (h *Hub) save() error {
	if h.tempDir {
		return nil
	}
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	gen := h.changes.Load()
	if gen == h.savedChange {
		return nil
	}
	snap := snapshot{Format: snapshotFormat}
	for _, name := range []string{PolicyOwner, PolicyService, PolicyRegistryRead, PolicyRegistryReadWrite, PolicyDevice} {
		snap.Policies = append(snap.Policies, *h.policies[name])
	}
	for _, d := range h.reg.ordered() {
		d.mu.Lock()
		if !d.deleted {
			snap.Devices = append(snap.Devices, snapDevice{
				ID: d.id, PrimaryKey: d.primaryKey, SecondaryKey: d.secondaryKey,
				Status: d.status, StatusReason: d.statusReason, StatusTime: d.statusTime,
				GenerationID: d.generationID, ETag: d.etag, LastActivity: d.lastActivity,
				Twin: snapTwin{
					Version: d.twin.version, DesiredVersion: d.twin.desVer, ReportedVersion: d.twin.repVer,
					Tags: toSnap(d.twin.tags), Desired: toSnap(d.twin.desired), Reported: toSnap(d.twin.reported),
				},
			})
		}
		d.mu.Unlock()
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(h.dir, stateFile), b, 0o600); err != nil {
		return err
	}
	h.savedChange = gen
	return nil
}
