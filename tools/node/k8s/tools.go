//go:build tools

// Package tools records the Kubernetes node commands this module builds, so `go mod tidy`
// keeps their dependencies. tools/node/build.sh builds them with the same flags as the
// control plane (so the Go build cache is shared).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
