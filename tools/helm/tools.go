//go:build tools

// Package tools records the helm command this module builds (tools/helm/build.sh), so
// `go mod tidy` keeps its dependencies. The chart tests run `helm lint`, install, upgrade
// and uninstall against the local node with it.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
