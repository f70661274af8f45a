package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// A missing file is created with a key that the next Load returns again;
// a file that holds no key is an error naming it; no file means a new key.
func TestLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key")
	k1, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v (want mode 0600)", fi, err)
	}
	k2, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("the saved key was not loaded again")
	}
	if a, b := must(t, ""), must(t, ""); a.Equals(b) {
		t.Fatal("two unsaved keys are equal")
	}
	if err := os.WriteFile(file, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Load of a bad file: %v, want an error naming it", err)
	}
}

func must(t *testing.T, file string) crypto.PrivKey {
	t.Helper()
	k, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
