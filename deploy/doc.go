// Package deploy holds the Kubernetes manifests of the bucketfs CSI driver
// (the *.yaml files here, and examples/), and the test that decodes each of
// them strictly into the Kubernetes API types. It has no Go code of its own.
package deploy
