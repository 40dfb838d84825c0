package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUserAllowOther(t *testing.T) {
	tests := []struct {
		conf string
		want bool
	}{
		{"user_allow_other\n", true},
		{"  user_allow_other  \n#mount_max = 1000\n", true},
		{"user_allow_other # enabled for bucketfs\n", true},
		{"#user_allow_other\n", false},
		{"# user_allow_other - Using the allow_other mount option works fine as root\n", false},
		{"mount_max = 10\n", false},
		{"", false},
	}
	for _, tc := range tests {
		p := filepath.Join(t.TempDir(), "fuse.conf")
		if err := os.WriteFile(p, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := userAllowOther(p); got != tc.want {
			t.Errorf("userAllowOther(%q) = %v, want %v", tc.conf, got, tc.want)
		}
	}
	if userAllowOther(filepath.Join(t.TempDir(), "missing")) {
		t.Error("a missing fuse.conf allows allow_other")
	}
}

func TestCheckAllowOther(t *testing.T) {
	oldPath, oldEuid := fuseConfPath, geteuid
	t.Cleanup(func() { fuseConfPath, geteuid = oldPath, oldEuid })
	fuseConfPath = filepath.Join(t.TempDir(), "fuse.conf")
	os.WriteFile(fuseConfPath, []byte("#user_allow_other\n"), 0o644)
	tests := []struct {
		name       string
		euid       int
		allowOther bool
		wantErr    bool
	}{
		{"user with --allow-other", 1000, true, true},
		{"user without", 1000, false, false},
		{"root with --allow-other", 0, true, false},
	}
	for _, tc := range tests {
		geteuid = func() int { return tc.euid }
		err := checkAllowOther(mountConfig{AllowOther: tc.allowOther, MountPoint: "/mnt/x"})
		if (err != nil) != tc.wantErr || (err != nil && !strings.Contains(err.Error(), "user_allow_other")) {
			t.Errorf("%s: %v, want error %v naming user_allow_other", tc.name, err, tc.wantErr)
		}
	}
	os.WriteFile(fuseConfPath, []byte("user_allow_other\n"), 0o644)
	geteuid = func() int { return 1000 }
	if err := checkAllowOther(mountConfig{AllowOther: true, MountPoint: "/mnt/x"}); err != nil {
		t.Errorf("user with --allow-other and user_allow_other set: %v", err)
	}
}
