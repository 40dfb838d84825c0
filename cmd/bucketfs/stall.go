package main

import "time"

// defaultedDuration is a duration flag whose zero value means "the default
// of the layer below" (the cache fills it in), shown as that default in the
// help. It keeps the zero value in mountConfig, so configurations built
// without the flag compare equal to parsed ones.
type defaultedDuration struct {
	durationValue
	def time.Duration
}

func (d defaultedDuration) String() string {
	if d.d == nil || *d.d == 0 {
		return d.def.String()
	}
	return d.durationValue.String()
}
