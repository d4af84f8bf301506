//go:build tools

// Package tools records the External Secrets Operator command this module builds
// (tools/eso/build.sh), so `go mod tidy` keeps its dependencies.
package tools

import (
	_ "github.com/external-secrets/external-secrets"
)
