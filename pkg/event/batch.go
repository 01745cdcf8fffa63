package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// BatchContentType marks a message that carries several events in the
// CloudEvents JSON batch format: a JSON array of structured events.
// Receivers send their receipts this way, one message per batch and
// sender, so that a receipt costs the broker a fraction of a message;
// each event in it is still whole, signed and chained on its own.
const BatchContentType = "application/cloudevents-batch+json"

// IsBatch reports whether a message with header h is a batch.
func IsBatch(h nats.Header) bool {
	return hasPrefixFold(h.Get(headerContentType), BatchContentType)
}

// NewBatchMsg builds one message on subject that carries evs, in order. Its
// Nats-Msg-Id is that of the first event with the number of events, which
// is unique as long as event ids are.
func NewBatchMsg(subject string, evs []*ce.Event) (*nats.Msg, error) {
	if len(evs) == 0 {
		return nil, errors.New("new batch message: no events")
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range evs {
		enc, err := Encode(e)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(enc)
	}
	b.WriteByte(']')
	h := make(nats.Header, 2)
	h[headerMsgID] = []string{fmt.Sprintf("%s+%d", MsgID(evs[0]), len(evs))}
	h[headerContentType] = []string{BatchContentType}
	return &nats.Msg{Subject: subject, Header: h, Data: b.Bytes()}, nil
}

// SplitBatch returns the events of a batch body, each the bytes of one
// structured event as it was sent, for Decode. An error wraps
// ErrMalformed.
func SplitBatch(body []byte) ([][]byte, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, fmt.Errorf("%w: batch is not a JSON array of events: %v", ErrMalformed, err)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%w: batch holds no event", ErrMalformed)
	}
	out := make([][]byte, len(elems))
	for i, e := range elems {
		out[i] = e
	}
	return out, nil
}
