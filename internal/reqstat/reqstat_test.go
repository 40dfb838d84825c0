package reqstat

import (
	"context"
	"sync"
	"testing"
)

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		counter bool
		retries int
		want    int64
	}{
		{"no counter: Retried is a no-op", false, 3, 0},
		{"none", true, 0, 0},
		{"one", true, 1, 1},
		{"concurrent", true, 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var c *Counter
			if tc.counter {
				ctx, c = WithCounter(ctx)
			}
			// A derived context (the SDK adds its own values and
			// deadlines) still reaches the counter.
			inner, cancel := context.WithCancel(ctx)
			defer cancel()
			var wg sync.WaitGroup
			for range tc.retries {
				wg.Add(1)
				go func() { defer wg.Done(); Retried(inner) }()
			}
			wg.Wait()
			if got := c.Retries(); got != tc.want {
				t.Errorf("Retries() = %d, want %d", got, tc.want)
			}
			if got := FromContext(inner); got != c {
				t.Errorf("FromContext = %p, want %p", got, c)
			}
		})
	}
}
