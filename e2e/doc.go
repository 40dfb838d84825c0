// Package e2e holds the end-to-end tests of bucketfs: they run the built
// binary as a subprocess against a real S3 server (versitygw) and read the
// mount with ordinary tools (ls, find, cat, stat, sha256sum) and R.
//
// They are skipped unless BUCKETFS_E2E is set; scripts/test sets it along
// with BUCKETFS_BIN (the binary), BUCKETFS_TEST_S3_ENDPOINT, the AWS_*
// credentials and BUCKETFS_VGW_ACCESS_LOG (the server's access log, used to
// count requests). When BUCKETFS_E2E is set, anything missing is a failure.
package e2e
