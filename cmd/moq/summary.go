package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

// printSummary writes the one JSON line pub and sub end with:
// {"frames":N,"groups":G,"bytes":B,"sha256":"…"}.
func printSummary(w io.Writer, s pattern.Summary) {
	line, _ := json.Marshal(s) // a struct of numbers and a string cannot fail
	fmt.Fprintf(w, "%s\n", line)
}
