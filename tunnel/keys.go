package tunnel

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// Key is a WireGuard public key. It prints as base64.
type Key [32]byte

// PrivateKey is a secret WireGuard key (a private or preshared key). It
// prints as [redacted] everywhere (fmt, slog, JSON) so it cannot leak into
// logs or status by accident; use Hex or Base64 on purpose.
type PrivateKey [32]byte

func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("not a WireGuard key: not valid base64")
	}
	if len(b) != 32 {
		return k, fmt.Errorf("not a WireGuard key: want 32 bytes of base64, got %d bytes", len(b))
	}
	copy(k[:], b)
	return k, nil
}

// ParseKey reads a base64 public key.
func ParseKey(s string) (Key, error) { k, err := parseKey(s); return Key(k), err }

// ParsePrivateKey reads a base64 private or preshared key.
func ParsePrivateKey(s string) (PrivateKey, error) {
	k, err := parseKey(s)
	return PrivateKey(k), err
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Key) UnmarshalText(b []byte) (err error) { *k, err = ParseKey(string(b)); return }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PrivateKey) UnmarshalText(b []byte) (err error) {
	*k, err = ParsePrivateKey(string(b))
	return
}

func (k Key) String() string               { return base64.StdEncoding.EncodeToString(k[:]) }
func (k Key) Hex() string                  { return hex.EncodeToString(k[:]) }
func (k Key) IsZero() bool                 { return k == Key{} }
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k PrivateKey) String() string               { return "[redacted]" }
func (k PrivateKey) GoString() string             { return "[redacted]" }
func (k PrivateKey) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
func (k PrivateKey) Hex() string                  { return hex.EncodeToString(k[:]) }
func (k PrivateKey) Base64() string               { return base64.StdEncoding.EncodeToString(k[:]) }
func (k PrivateKey) IsZero() bool                 { return k == PrivateKey{} }

// Public derives the public key.
func (k PrivateKey) Public() Key {
	var pub Key
	curve25519.ScalarBaseMult((*[32]byte)(&pub), (*[32]byte)(&k))
	return pub
}

// NewPrivateKey makes a fresh clamped Curve25519 private key.
func NewPrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}
