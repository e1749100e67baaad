//go:build tools

// Package tools pins the BaizeAI/dataset controller (hack/build-dataset-controller.sh builds
// github.com/BaizeAI/dataset/cmd from this module). Never compiled: the build tag keeps it out.
package tools

import _ "github.com/BaizeAI/dataset/cmd"
