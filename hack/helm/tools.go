//go:build tools

// Package tools pins helm (hack/build-helm.sh builds helm.sh/helm/v3/cmd/helm from this
// module, for the chart tests and the release workflow). Never compiled: the build tag keeps it
// out.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
