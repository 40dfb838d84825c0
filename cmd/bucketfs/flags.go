package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/bucketfs/bucketfs/internal/units"
	"io"
	"strconv"
	"time"
)

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("bucketfs mount /mnt/s3 --read-only" works), and
// returns the positionals. "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// sizeValue is a byte count given as 512MiB, 2GiB, 1G, 100M, 4096.
type sizeValue struct{ n *int64 }

func (s sizeValue) String() string {
	if s.n == nil {
		return ""
	}
	return units.FormatSize(*s.n)
}

func (s sizeValue) Set(v string) error {
	n, err := units.ParseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

// modeValue is a permission mode in octal (0444).
type modeValue struct{ m *uint32 }

func (m modeValue) String() string {
	// Zero is "not given": the mount picks the mode (read-write or not).
	if m.m == nil || *m.m == 0 {
		return ""
	}
	return fmt.Sprintf("%04o", *m.m)
}

func (m modeValue) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o7777 {
		return fmt.Errorf("%q is not an octal permission mode like 0444", v)
	}
	*m.m = uint32(n)
	return nil
}

// durationValue accepts Go durations (90s, 5m) and plain seconds (60).
type durationValue struct{ d *time.Duration }

func (d durationValue) String() string {
	if d.d == nil {
		return ""
	}
	return d.d.String()
}

func (d durationValue) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*d.d = time.Duration(n * float64(time.Second))
		return nil
	}
	t, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration: use 60s, 5m or a number of seconds", v)
	}
	*d.d = t
	return nil
}

// usageError is a command-line mistake: printed with a hint to --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// newFlagSet makes a FlagSet that reports errors to the caller instead of
// printing and exiting; the commands print their own help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// printFlags writes the flags of fs, one per line with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%-30s %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
