package schemas_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/refbus/refbus/schemas"
)

// Every event type with a schema has an AsyncAPI message of that name that
// points at the schema, so the contract document cannot fall behind.
func TestEveryEventTypeIsInAsyncAPI(t *testing.T) {
	reg, err := schemas.Registry()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	types := reg.Types()
	if len(types) == 0 {
		t.Fatal("no event types in the registry")
	}
	for _, typ := range types {
		id, _ := reg.SchemaID(typ)
		if !regexp.MustCompile(`(?m)^\s+name: ` + regexp.QuoteMeta(typ) + `$`).Match(doc) {
			t.Errorf("asyncapi.yaml has no message named %s", typ)
		}
		if !regexp.MustCompile(`(?m)x-dataschema: ` + regexp.QuoteMeta(id) + `$`).Match(doc) {
			t.Errorf("asyncapi.yaml does not point at the schema %s", id)
		}
	}
}
