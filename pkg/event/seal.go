package event

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	ce "github.com/cloudevents/sdk-go/v2/event"
	jsoniter "github.com/json-iterator/go"
)

// sealJSON is as encoding/json, faster.
var sealJSON = jsoniter.ConfigCompatibleWithStandardLibrary

// Sealed events. A schema marks the properties of its data that are about
// people with "x-sealed": true. Seal moves those properties into one box,
// encrypted with AES-256-GCM under the data key of the event's referral,
// and leaves the rest readable: what routing, auditing and reconciling
// need. A sealed event names the derived schema of its sealed form in its
// dataschema (the type's $id with SealedForm appended), so whoever reads
// the stream can tell the two forms apart and validate the readable part
// without a key. The box's additional data is the event's id, source,
// type and subject, so it cannot be moved to another event; the event's
// signature covers the sealed form, so it is verified without opening it.
//
// How the data key travels (wrapped to the receiving node) is the
// caller's: Seal stores the wrapped key it is given beside the box, and
// WrappedKey gives it back.

// SealedForm is appended to a schema's $id to name its sealed form.
const SealedForm = "?form=sealed"

// sealedProperty is the data property that holds the sealed part.
const sealedProperty = "sealed"

// sealedKeyword marks a property of a type's data as sealed.
const sealedKeyword = "x-sealed"

// DataKeySize is the size of a data key: AES-256.
const DataKeySize = 32

// ErrNotOpened wraps the reason a sealed event could not be opened.
var ErrNotOpened = errors.New("sealed part does not open")

// NewDataKey returns a fresh random data key.
func NewDataKey() []byte {
	k := make([]byte, DataKeySize)
	_, _ = rand.Read(k) // crypto/rand.Read never fails
	return k
}

// sealedPart is the "sealed" property of a sealed event's data.
type sealedPart struct {
	Key string `json:"key,omitempty"` // the data key wrapped to the receiver, where the event carries it
	Box string `json:"box"`           // nonce and AES-GCM ciphertext of the sealed properties, base64
}

// sealedFormSchema derives the schema of a type's sealed form from its
// schema document: the sealed properties go, and "sealed" comes. It
// returns nil when the type seals nothing.
func sealedFormSchema(obj map[string]any, id string) (doc map[string]any, fields []string) {
	props, _ := obj["properties"].(map[string]any)
	for name, p := range props {
		if p, ok := p.(map[string]any); ok && p[sealedKeyword] == true {
			fields = append(fields, name)
		}
	}
	if len(fields) == 0 {
		return nil, nil
	}
	slices.Sort(fields)
	doc = make(map[string]any, len(obj))
	for k, v := range obj {
		doc[k] = v
	}
	doc["$id"] = id + SealedForm
	delete(doc, typeKeyword)
	kept := make(map[string]any, len(props))
	for name, p := range props {
		if !slices.Contains(fields, name) {
			kept[name] = p
		}
	}
	kept[sealedProperty] = map[string]any{
		"type":                 "object",
		"description":          "The properties about people, sealed to the receiving node.",
		"required":             []any{"box"},
		"additionalProperties": false,
		"properties": map[string]any{
			"key": map[string]any{"type": "string", "minLength": 1, "maxLength": 1024},
			"box": map[string]any{"type": "string", "minLength": 1, "maxLength": 262144},
		},
	}
	doc["properties"] = kept
	required := []any{sealedProperty}
	if req, ok := obj["required"].([]any); ok {
		for _, r := range req {
			if s, _ := r.(string); !slices.Contains(fields, s) {
				required = append(required, r)
			}
		}
	}
	doc["required"] = required
	return doc, fields
}

// SealedFields lists the properties of eventType's data that Seal seals;
// none for a type that is readable as a whole.
func (r *Registry) SealedFields(eventType string) []string {
	if s, ok := r.schemas[eventType]; ok {
		return slices.Clone(s.sealedFields)
	}
	return nil
}

// IsSealed reports whether e carries its data in the sealed form.
func (r *Registry) IsSealed(e *ce.Event) bool {
	s, ok := r.schemas[e.Type()]
	return ok && s.sealed != nil && e.DataSchema() == s.sealedID
}

// Seal puts e's data in its sealed form under key, with wrapped (the key
// wrapped to the receiver, or nil) beside it. A type that seals nothing
// is left as it is.
func (r *Registry) Seal(e *ce.Event, key, wrapped []byte) error {
	s, ok := r.schemas[e.Type()]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, e.Type())
	}
	if s.sealed == nil || r.IsSealed(e) {
		return nil
	}
	var data map[string]json.RawMessage
	if err := sealJSON.Unmarshal(e.Data(), &data); err != nil {
		return fmt.Errorf("%w: data is not a JSON object: %v", ErrInvalid, err)
	}
	inside := make(map[string]json.RawMessage, len(s.sealedFields))
	for _, f := range s.sealedFields {
		if v, ok := data[f]; ok {
			inside[f] = v
			delete(data, f)
		}
	}
	plain := writeObject(inside)
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	box := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(box)
	box = aead.Seal(box, box, plain, boxAD(e))
	part := sealedPart{Box: base64.StdEncoding.EncodeToString(box)}
	if wrapped != nil {
		part.Key = base64.StdEncoding.EncodeToString(wrapped)
	}
	if data[sealedProperty], err = sealJSON.Marshal(part); err != nil {
		return err
	}
	e.DataEncoded = writeObject(data)
	e.SetDataSchema(s.sealedID)
	return nil
}

// WrappedKey returns the wrapped data key a sealed event carries, nil if
// it carries none (the receiver holds the key from the referral's
// request).
func (r *Registry) WrappedKey(e *ce.Event) ([]byte, error) {
	p, _, err := r.sealedPart(e)
	if err != nil || p.Key == "" {
		return nil, err
	}
	k, err := base64.StdEncoding.DecodeString(p.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: its wrapped key is not base64", ErrNotOpened)
	}
	return k, nil
}

// Open puts a sealed event's data back in its clear form, opened with
// key. It does not validate the clear data: Validate does. An event that
// is not sealed is left as it is. Errors wrap ErrNotOpened.
func (r *Registry) Open(e *ce.Event, key []byte) error {
	return r.OpenWith(e, func([]byte) ([]byte, error) { return key, nil })
}

// OpenWith is Open with the key that key gives for the wrapped key the
// event carries (nil if it carries none). An error of key is returned as
// it is.
func (r *Registry) OpenWith(e *ce.Event, key func(wrapped []byte) ([]byte, error)) error {
	if !r.IsSealed(e) {
		return nil
	}
	p, data, err := r.sealedPart(e)
	if err != nil {
		return err
	}
	var wrapped []byte
	if p.Key != "" {
		if wrapped, err = base64.StdEncoding.DecodeString(p.Key); err != nil {
			return fmt.Errorf("%w: its wrapped key is not base64", ErrNotOpened)
		}
	}
	k, err := key(wrapped)
	if err != nil {
		return err
	}
	box, err := base64.StdEncoding.DecodeString(p.Box)
	if err != nil {
		return fmt.Errorf("%w: its box is not base64", ErrNotOpened)
	}
	aead, err := newAEAD(k)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotOpened, err)
	}
	if len(box) < aead.NonceSize() {
		return fmt.Errorf("%w: its box is too short", ErrNotOpened)
	}
	plain, err := aead.Open(box[aead.NonceSize():aead.NonceSize()], box[:aead.NonceSize()], box[aead.NonceSize():], boxAD(e))
	if err != nil {
		return fmt.Errorf("%w with the referral's data key: it was sealed under another key or changed", ErrNotOpened)
	}
	var inside map[string]json.RawMessage
	if err := sealJSON.Unmarshal(plain, &inside); err != nil {
		return fmt.Errorf("%w: what it holds is not a JSON object", ErrNotOpened)
	}
	s := r.schemas[e.Type()]
	delete(data, sealedProperty)
	for k, v := range inside {
		if !slices.Contains(s.sealedFields, k) {
			return fmt.Errorf("%w: it holds %q, which %s does not seal", ErrNotOpened, k, e.Type())
		}
		if _, dup := data[k]; dup {
			return fmt.Errorf("%w: %q is both sealed and readable", ErrNotOpened, k)
		}
		data[k] = v
	}
	e.DataEncoded = writeObject(data)
	e.SetDataSchema(s.id)
	return nil
}

// sealedPart reads the sealed part of a sealed event, and the rest of its
// data.
func (r *Registry) sealedPart(e *ce.Event) (sealedPart, map[string]json.RawMessage, error) {
	var p sealedPart
	if !r.IsSealed(e) {
		return p, nil, nil
	}
	var data map[string]json.RawMessage
	if err := sealJSON.Unmarshal(e.Data(), &data); err != nil {
		return p, nil, fmt.Errorf("%w: data is not a JSON object", ErrNotOpened)
	}
	raw, ok := data[sealedProperty]
	if !ok {
		return p, nil, fmt.Errorf("%w: it has no %q property", ErrNotOpened, sealedProperty)
	}
	if err := sealJSON.Unmarshal(raw, &p); err != nil {
		return p, nil, fmt.Errorf("%w: %q is not an object of key and box", ErrNotOpened, sealedProperty)
	}
	return p, data, nil
}

// writeObject is the JSON object of m's members, keys sorted; the values
// are written as they are, valid JSON since they were parsed.
func writeObject(m map[string]json.RawMessage) []byte {
	st := sealJSON.BorrowStream(nil)
	defer sealJSON.ReturnStream(st)
	st.WriteObjectStart()
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			st.WriteMore()
		}
		st.WriteObjectField(k)
		_, _ = st.Write(m[k])
	}
	st.WriteObjectEnd()
	return slices.Clone(st.Buffer())
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("a data key is %d bytes, not %d", DataKeySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// boxAD binds a box to its event.
func boxAD(e *ce.Event) []byte {
	return []byte("refbus sealed v1\x00" + e.ID() + "\x00" + e.Source() + "\x00" + e.Type() + "\x00" + e.Subject())
}
