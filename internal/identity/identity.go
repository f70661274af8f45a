// Package identity loads the libp2p private key that gives a peer a stable
// ID across restarts, for the CLI and the examples.
package identity

import (
	"errors"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Load reads the key in file, creating the file (mode 0600) with a new
// Ed25519 key if it does not exist. An empty file name means a new key that
// is not saved. Errors name the file.
func Load(file string) (crypto.PrivKey, error) {
	if file == "" {
		k, _, err := crypto.GenerateEd25519Key(nil)
		return k, err
	}
	b, err := os.ReadFile(file)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err // names the file
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	if b, err = crypto.MarshalPrivateKey(k); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err // names the file
	}
	return k, nil
}
