package person

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// MinNetworkKeyLen is the shortest network key NewKeyer accepts, in bytes:
// the output size of SHA-256, below which the key is the weak point of the
// HMAC.
const MinNetworkKeyLen = 32

// ErrShortNetworkKey means the network key given to NewKeyer is shorter than
// MinNetworkKeyLen.
var ErrShortNetworkKey = errors.New("network key too short")

// Key is the pseudonym agencies use to match a person without sending the
// national id: the lowercase hex HMAC-SHA256, under the network key, of
// country + ":" + number (for example "KZ:880101300123").
//
// The same person has the same Key in every agency that shares the network
// key, and nobody without that key can tell whose Key it is. Because an id
// space of 10^12 is small enough to search, the network key is the only
// protection: keep it as secret as the ids themselves.
type Key string

// Keyer computes person keys under one network key. It is safe for
// concurrent use, and it never prints its key.
type Keyer struct {
	key []byte
}

// NewKeyer returns a Keyer for networkKey, which must be at least
// MinNetworkKeyLen bytes; otherwise the error wraps ErrShortNetworkKey.
// NewKeyer copies networkKey, so the caller may wipe its own copy.
func NewKeyer(networkKey []byte) (*Keyer, error) {
	if len(networkKey) < MinNetworkKeyLen {
		return nil, fmt.Errorf("network key has %d bytes, want at least %d: %w",
			len(networkKey), MinNetworkKeyLen, ErrShortNetworkKey)
	}
	return &Keyer{key: append([]byte(nil), networkKey...)}, nil
}

// Key returns the person key of id. It returns the empty Key for an id that
// Parse would not accept, such as the zero ID: a key for those would make
// every record with a missing id match every other one.
func (k *Keyer) Key(id ID) Key {
	// Re-parsing also trims a hand-built Number, so that two spellings of one
	// id never give two keys.
	p, err := Parse(id.Country, id.Number)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(string(p.Country) + ":" + p.Number))
	return Key(hex.EncodeToString(m.Sum(nil)))
}

// Format hides the network key from every fmt verb. It has a value receiver,
// unlike Key, so that a dereferenced Keyer hides its key too.
func (k Keyer) Format(f fmt.State, _ rune) {
	fmt.Fprint(f, "person.Keyer{network key hidden}")
}

// LogValue hides the network key from slog.
func (k Keyer) LogValue() slog.Value {
	return slog.StringValue("person.Keyer{network key hidden}")
}
