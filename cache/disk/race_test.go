//go:build race

package disk

// The race detector slows the walk of the directory about threefold.
func init() { indexBound *= 3 }
