package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	ce "github.com/cloudevents/sdk-go/v2/event"
	jsoniter "github.com/json-iterator/go"
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
//
// It only frames the events: Decode checks each one strictly (json.Valid),
// so the batch is read in one lenient pass instead of two strict ones.
func SplitBatch(body []byte) ([][]byte, error) {
	malformed := func(why string) error {
		return fmt.Errorf("%w: batch is not a JSON array of events: %s", ErrMalformed, why)
	}
	it := jsoniter.ConfigDefault.BorrowIterator(body)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	if it.WhatIsNext() != jsoniter.ArrayValue {
		return nil, malformed("it does not start with [")
	}
	var out [][]byte
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		out = append(out, bytes.TrimLeft(it.SkipAndReturnBytes(), " \t\r\n"))
		return it.Error == nil
	})
	if it.Error != nil {
		return nil, malformed(it.Error.Error())
	}
	// Past the closing ], only white space may follow: reading on must hit
	// the end of the body.
	if it.WhatIsNext(); it.Error != io.EOF {
		return nil, malformed("there is more after its closing ]")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: batch holds no event", ErrMalformed)
	}
	return out, nil
}
