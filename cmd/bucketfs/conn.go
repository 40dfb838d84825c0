package main

import (
	"flag"

	"github.com/bucketfs/bucketfs/auth"
)

// connFlags are the connection and credential flags, one definition for
// every command that talks to S3 (mount and whoami), so whoami checks
// exactly what a mount with the same flags would use.
type connFlags struct {
	Endpoint, Region, Profile string
	Credentials               string // --credentials: "" for the standard chain
	PathStyle                 bool
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Endpoint, "endpoint-url", "", "S3 endpoint `URL` for S3-compatible servers (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)")
	fs.StringVar(&c.Region, "region", "", "AWS `region`; default AWS_REGION, AWS_DEFAULT_REGION, the profile, instance metadata, us-east-1")
	fs.StringVar(&c.Profile, "profile", "", "`name` of a profile in ~/.aws/config and ~/.aws/credentials (also AWS_PROFILE)")
	fs.StringVar(&c.Credentials, "credentials", "", "use only this credential `source`: env, profile, web-identity, container or instance-role (default: the standard chain)")
	fs.BoolVar(&c.PathStyle, "path-style", false, "address buckets as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (most S3-compatible servers)")
}

// check validates the flags after parsing.
func (c connFlags) check() error {
	if err := auth.CheckCredentialsSource(c.Credentials); err != nil {
		return usageError{err.Error()}
	}
	return nil
}
