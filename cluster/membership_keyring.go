package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Gossip encryption. With MembershipConfig.Keys (or a keyring file) every
// gossip packet and push/pull stream is encrypted with the primary key
// (AES-GCM) and accepted only if one of the installed keys decrypts it;
// memberlist's GossipVerifyIncoming and GossipVerifyOutgoing are on, so a
// member without a key (plaintext) or with other keys is never heard and
// cannot join.
//
// Keys rotate cluster-wide through serf's KeyManager: each operation is a
// serf query that every alive member answers after changing its own
// keyring. The safe rotation is InstallKey(new) everywhere, UseKey(new),
// then RemoveKey(old); ListKeys shows which members hold which keys.
//
// The keyring file. Serf rewrites KeyringFile (a JSON list of base64 keys,
// the primary first) after each key query it applies, but never reads it:
// loading it is the agent's job, as in serf's and Consul's agents. As they
// do, a keyring file that exists wins over the configured keys on start,
// and the configured keys are written to it only when there is none
// (Consul writes its `encrypt` key into the keyring only when no keyring
// file exists, and warns that `encrypt` is ignored otherwise). So keys
// installed or rotated at run time survive restarts, and changing Keys in
// the configuration of a node that already has a keyring file does
// nothing (the node logs a warning): remove the file, or rotate with the
// key operations.

// KeyResponse is the outcome of a cluster-wide key operation.
type KeyResponse struct {
	// Members is how many members the query was sent to (the alive and
	// suspect members this node knows, itself included).
	Members int
	// Answered is how many of them answered in time.
	Answered int
	// Failed is how many answered with an error.
	Failed int
	// Messages holds, per member id, the error (or warning) it answered.
	Messages map[string]string
}

// KeyListResponse is the outcome of ListKeys.
type KeyListResponse struct {
	KeyResponse
	// Keys counts, per installed key (base64), the members that hold it.
	Keys map[string]int
	// PrimaryKeys counts, per primary key (base64), the members that
	// encrypt with it.
	PrimaryKeys map[string]int
}

// validateGossipKey reports whether key can be an AES-128, -192 or -256
// gossip key.
func validateGossipKey(key []byte) error {
	if err := memberlist.ValidateKey(key); err != nil {
		return fmt.Errorf("gossip key of %d bytes: %w", len(key), err)
	}
	return nil
}

// keyring returns the keyring gossip starts with (nil: encryption off):
// the keyring file's keys when it exists, else c.Keys, which are then
// written to the keyring file.
func (c MembershipConfig) keyring(log *slog.Logger) (*memberlist.Keyring, error) {
	keys := c.Keys
	if c.KeyringFile != "" {
		stored, err := readKeyringFile(c.KeyringFile)
		switch {
		case err == nil:
			if len(keys) > 0 && !bytes.Equal(keys[0], stored[0]) {
				log.Warn("the gossip keyring file wins over the configured keys; remove it or rotate keys to change them",
					"file", c.KeyringFile)
			}
			keys = stored
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		case len(keys) > 0:
			if err := writeKeyringFile(c.KeyringFile, keys); err != nil {
				return nil, err
			}
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	ring, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip keyring: %w", err)
	}
	return ring, nil
}

// readKeyringFile reads serf's keyring file: a JSON list of base64 keys,
// the primary first.
func readKeyringFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster: read gossip keyring: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(b, &encoded); err != nil {
		return nil, fmt.Errorf("cluster: gossip keyring %s is not a JSON list of keys (fix or remove it): %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("cluster: gossip keyring %s holds no key (fix or remove it)", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, e := range encoded {
		k, err := base64.StdEncoding.DecodeString(e)
		if err == nil {
			err = validateGossipKey(k)
		}
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip keyring %s, key %d: %w", path, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// writeKeyringFile writes keys in serf's format, readable by the owner
// only, through a temporary file and a rename so that a crash leaves the
// old file or the new one.
func writeKeyringFile(path string, keys [][]byte) error {
	encoded := make([]string, len(keys))
	for i, k := range keys {
		encoded[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, err := json.MarshalIndent(encoded, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cluster: gossip keyring dir: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("cluster: write gossip keyring: %w", err)
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("cluster: write gossip keyring %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		_ = d.Close()
	}
	return nil
}

// InstallKey adds key to the keyring of every member, without using it yet.
// The error (which comes with the response) says when some members failed
// or did not answer; the operation may then be repeated.
func (m *Membership) InstallKey(ctx context.Context, key []byte) (KeyResponse, error) {
	r, err := m.keyOp(ctx, "install", key, (*serf.KeyManager).InstallKey)
	return r.KeyResponse, err
}

// UseKey makes key, which must be installed everywhere, the key every
// member encrypts with.
func (m *Membership) UseKey(ctx context.Context, key []byte) (KeyResponse, error) {
	r, err := m.keyOp(ctx, "use", key, (*serf.KeyManager).UseKey)
	return r.KeyResponse, err
}

// RemoveKey removes key from the keyring of every member; a member refuses
// to remove its primary key.
func (m *Membership) RemoveKey(ctx context.Context, key []byte) (KeyResponse, error) {
	r, err := m.keyOp(ctx, "remove", key, (*serf.KeyManager).RemoveKey)
	return r.KeyResponse, err
}

// ListKeys asks every member for its keys.
func (m *Membership) ListKeys(ctx context.Context) (KeyListResponse, error) {
	return m.keyOp(ctx, "list", nil, func(km *serf.KeyManager, _ string) (*serf.KeyResponse, error) {
		return km.ListKeys()
	})
}

// keyOp runs one KeyManager query. The query waits for every member or for
// serf's query timeout (GossipInterval x 16 x ceil(log10(members+1)));
// ctx only stops the wait, the query itself goes on.
func (m *Membership) keyOp(ctx context.Context, op string, key []byte,
	call func(*serf.KeyManager, string) (*serf.KeyResponse, error)) (KeyListResponse, error) {
	if op != "list" {
		if err := validateGossipKey(key); err != nil {
			return KeyListResponse{}, fmt.Errorf("%w: %s key: %w", ErrInvalidConfig, op, err)
		}
	}
	if m.closed.Load() {
		return KeyListResponse{}, ErrClosed
	}
	if m.ring == nil {
		return KeyListResponse{}, fmt.Errorf("%w: cannot %s keys", ErrEncryptionOff, op)
	}
	// Serf answers each key query in a goroutine of its own, and
	// memberlist v0.5.2 reads the keyring there without its lock (fixed in
	// v0.6.0, memberlist#342). Taking the lock here orders this node's
	// handler of the coming query after the keyring changes made before
	// this call, which an earlier query, answered in another goroutine,
	// may have made.
	_ = m.ring.GetKeys()
	type result struct {
		r   *serf.KeyResponse
		err error
	}
	ch := make(chan result, 1)
	m.keyMu.Lock()
	if m.keyClosed {
		m.keyMu.Unlock()
		return KeyListResponse{}, ErrClosed
	}
	m.keyOps.Add(1)
	m.keyMu.Unlock()
	go func() {
		defer m.keyOps.Done()
		r, err := call(m.serf.KeyManager(), base64.StdEncoding.EncodeToString(key))
		ch <- result{r, err}
	}()
	select {
	case <-ctx.Done():
		return KeyListResponse{}, fmt.Errorf("cluster: %s key: %w (the query may still take effect)", op, ctx.Err())
	case res := <-ch:
		out := keyListResponse(res.r)
		if res.err != nil {
			return out, fmt.Errorf("cluster: %s key: %w", op, res.err)
		}
		return out, nil
	}
}

func keyListResponse(r *serf.KeyResponse) KeyListResponse {
	if r == nil {
		return KeyListResponse{}
	}
	return KeyListResponse{
		KeyResponse: KeyResponse{Members: r.NumNodes, Answered: r.NumResp, Failed: r.NumErr, Messages: r.Messages},
		Keys:        r.Keys,
		PrimaryKeys: r.PrimaryKeys,
	}
}
