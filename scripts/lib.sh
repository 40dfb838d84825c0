# shellcheck shell=bash
# Shared helpers for scripts/test and scripts/demo. Source it; it defines
# functions and a few variables, and runs nothing on its own.
#
#   bfs_repo_root          print the repository root (the parent of scripts/)
#   bfs_install_deps       install fuse3, R, data.table and versitygw when missing
#   bfs_vgw_start DIR      start versitygw on 127.0.0.1:<free port> below DIR
#   bfs_vgw_stop           stop the server bfs_vgw_start started
#   bfs_build              scripts/build: bin/bucketfs, static, version stamped
#   bfs_unmount_under DIR  lazily unmount every mount at or below DIR
#   bfs_safe_rm DIR...     unmount below DIR, then rm -rf --one-file-system it,
#                          unless a mount remains (then it refuses, and says so)

# Demo credentials for the throwaway local server. They are not secrets: the
# server listens on loopback only and lives for one test run.
BFS_VGW_ACCESS_KEY=${BFS_VGW_ACCESS_KEY:-AKBUCKETFSTEST}
BFS_VGW_SECRET_KEY=${BFS_VGW_SECRET_KEY:-SKbucketfsTestSecret0123456789}
BFS_VGW_VERSION=v1.8.0

bfs_log() { printf '==> %s\n' "$*" >&2; }
bfs_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

bfs_repo_root() {
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

bfs_gobin() {
	local gobin
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"
	printf '%s\n' "$gobin"
}

bfs_vgw_bin() {
	printf '%s/versitygw\n' "$(bfs_gobin)"
}

# _bfs_apt_install PKG... installs Debian packages, running apt-get update at
# most once per shell.
_bfs_apt_updated=
_bfs_apt_install() {
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || bfs_die "need root (or sudo) to install: $*"
		sudo=(sudo)
	fi
	if [[ -z $_bfs_apt_updated ]]; then
		bfs_log "apt-get update"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		_bfs_apt_updated=1
	fi
	bfs_log "apt-get install $*"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_bfs_pkg_installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

bfs_install_deps() {
	local missing=()
	if ! command -v fusermount3 >/dev/null || ! _bfs_pkg_installed fuse3; then
		missing+=(fuse3)
	fi
	if ! command -v Rscript >/dev/null || ! _bfs_pkg_installed r-base-core; then
		missing+=(r-base-core)
	fi
	if ! _bfs_pkg_installed r-cran-data.table; then
		missing+=(r-cran-data.table)
	fi
	# The e2e tests run commands as another user and need a few standard
	# tools; they are on Debian by default but cheap to make sure of.
	command -v runuser >/dev/null || missing+=(util-linux)
	command -v useradd >/dev/null || missing+=(passwd)
	command -v curl >/dev/null || missing+=(curl)
	if ((${#missing[@]})); then
		_bfs_apt_install "${missing[@]}"
	fi

	local vgw
	vgw=$(bfs_vgw_bin)
	if [[ ! -x $vgw ]]; then
		bfs_log "go install versitygw@$BFS_VGW_VERSION (takes a few minutes)"
		go install "github.com/versity/versitygw/cmd/versitygw@$BFS_VGW_VERSION"
	fi

	# Non-root users mount through the setuid fusermount3, which opens
	# /dev/fuse as that user; sandboxes often create the node 0600.
	if [[ $(id -u) -eq 0 ]]; then
		if [[ ! -e /dev/fuse ]]; then
			mknod -m 0666 /dev/fuse c 10 229 || bfs_die "/dev/fuse is missing and mknod failed"
		fi
		chmod 0666 /dev/fuse
	fi
	[[ -r /dev/fuse && -w /dev/fuse ]] || bfs_die "/dev/fuse is not usable by $(id -un)"
}

# _bfs_port_free PORT succeeds when nothing listens on 127.0.0.1:PORT.
_bfs_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bfs_vgw_start DIR [detach]
# Starts versitygw's POSIX backend on a free loopback port with its data in
# DIR/data, its access log in DIR/access.log and its own output in
# DIR/server.log. Sets and exports BFS_VGW_PID, BFS_VGW_PORT,
# BFS_VGW_ENDPOINT, BFS_VGW_ACCESS_LOG. With "detach" the server outlives
# the calling script (used by the demo).
bfs_vgw_start() {
	local dir=$1 detach=${2:-}
	local vgw try port pid
	vgw=$(bfs_vgw_bin)
	[[ -x $vgw ]] || bfs_die "versitygw not found at $vgw (run bfs_install_deps)"
	mkdir -p "$dir/data"
	for try in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		_bfs_port_free "$port" || continue
		# --quiet: no per-request lines on stdout; the access log has them.
		local cmd=("$vgw" --access "$BFS_VGW_ACCESS_KEY" --secret "$BFS_VGW_SECRET_KEY"
			--port "127.0.0.1:$port" --region us-east-1 --quiet
			--access-log "$dir/access.log" posix "$dir/data")
		if [[ -n $detach ]]; then
			nohup setsid "${cmd[@]}" >>"$dir/server.log" 2>&1 </dev/null &
		else
			"${cmd[@]}" >>"$dir/server.log" 2>&1 </dev/null &
		fi
		pid=$!
		if _bfs_wait_http "http://127.0.0.1:$port/" "$pid"; then
			export BFS_VGW_PID=$pid BFS_VGW_PORT=$port
			export BFS_VGW_ENDPOINT="http://127.0.0.1:$port"
			export BFS_VGW_ACCESS_LOG="$dir/access.log"
			bfs_log "versitygw pid $pid on $BFS_VGW_ENDPOINT (data $dir/data)"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	tail -n 20 "$dir/server.log" >&2 || true
	bfs_die "versitygw did not start"
}

# _bfs_wait_http URL PID waits up to 30 s for any HTTP answer from URL while
# PID is alive. An unsigned request gets 403 from S3, which still proves the
# server is up.
_bfs_wait_http() {
	local url=$1 pid=$2 i code
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
		if [[ -n $code && $code != 000 ]]; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# bfs_vgw_stop [PID] stops the server (default: $BFS_VGW_PID) and waits for it.
bfs_vgw_stop() {
	local pid=${1:-${BFS_VGW_PID:-}} i
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[[ $pid == "${BFS_VGW_PID:-}" ]] && unset BFS_VGW_PID
	return 0
}

# bfs_build builds bin/bucketfs in the repository (scripts/build: the
# static, version-stamped binary the image ships) and prints its path.
bfs_build() {
	local root
	root=$(bfs_repo_root)
	"$root/scripts/build" -o "$root/bin/bucketfs" || return 1
	printf '%s\n' "$root/bin/bucketfs"
}

# bfs_mounts_under DIR prints the mount points at or below DIR, deepest
# first, decoding the octal escapes of /proc/self/mountinfo.
bfs_mounts_under() {
	local dir=$1
	awk -v d="$dir" '
		function unescape(s,   out, i, c) {
			out = ""
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1)
				if (c == "\\" && substr(s, i + 1, 3) ~ /^[0-7][0-7][0-7]$/) {
					out = out sprintf("%c", (substr(s, i + 1, 1) * 64) + (substr(s, i + 2, 1) * 8) + substr(s, i + 3, 1))
					i += 3
				} else {
					out = out c
				}
			}
			return out
		}
		{ mp = unescape($5); if (mp == d || index(mp, d "/") == 1) print length(mp) "\t" mp }
	' /proc/self/mountinfo | sort -rn | cut -f2-
}

# bfs_unmount_under DIR lazily unmounts every FUSE mount at or below DIR, so
# a crashed test cannot leave a dead mount behind.
bfs_unmount_under() {
	local dir=$1 mp
	[[ -n $dir ]] || return 0
	while IFS= read -r mp; do
		[[ -n $mp ]] || continue
		bfs_log "unmounting stray mount $mp"
		fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
	done < <(bfs_mounts_under "$dir")
}

# bfs_safe_rm DIR... removes work directories that may have held mounts.
# Removing a directory with a read-write mount of all buckets left in it
# would delete every object, so it unmounts everything at or below DIR
# first, checks /proc/self/mountinfo again, and refuses (exit status 1,
# naming the mount) when any mount remains; rm's --one-file-system keeps it
# out of a mount made after the check.
bfs_safe_rm() {
	local dir left rc=0
	for dir in "$@"; do
		[[ -n $dir && -e $dir ]] || continue
		bfs_unmount_under "$dir"
		left=$(bfs_mounts_under "$dir")
		if [[ -n $left ]]; then
			printf 'error: not removing %s: still mounted there: %s (unmount it, then remove the directory by hand)\n' \
				"$dir" "${left//$'\n'/, }" >&2
			rc=1
			continue
		fi
		rm -rf --one-file-system -- "$dir" || rc=1
	done
	return "$rc"
}
