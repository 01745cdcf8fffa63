// Command openapi prints the OpenAPI document a node serves at
// /openapi.json, the caseworker UI's routes included, built without a store
// or a bus: for the linter (make lint-openapi) and the client generator
// (package apiclient).
//
//	go run ./services/internal/core/api/cmd/openapi [-node health] [-o file]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/refbus/refbus/services/internal/core/api"
	"github.com/refbus/refbus/services/internal/core/web"
)

func main() {
	node := flag.String("node", "health", "the node whose document to print (its name is in the title and the session cookie's name)")
	out := flag.String("o", "", "write to this file instead of standard output")
	flag.Parse()
	if err := run(*node, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
}

func run(node, out string) error {
	doc := api.Document(node)
	web.Document(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode the document: %w", err)
	}
	// Indented as /openapi.json's bytes would be by json.Indent, so that a
	// test can compare the two.
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("indent the document: %w", err)
	}
	buf.WriteByte('\n')
	if out == "" {
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
