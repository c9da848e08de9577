# shellcheck shell=bash
# Shared helpers for the CI scripts (.ci/run and scripts/ci/*.sh). Source it; don't run it.

# A section header a log reader can find: "==> installing pgvector".
section() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive

# apt-get that waits for the dpkg lock instead of failing at once, and never prompts.
apt_get() {
  apt-get -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 -q "$@"
}

# `apt-get update` at most once per CI run. .ci/run exports TESSERA_CI_APT_MARKER (a
# file path in its temp dir) so that the separate scripts it calls share the marker.
apt_update_once() {
  local marker="${TESSERA_CI_APT_MARKER:-}"
  if [[ "${TESSERA_CI_APT_UPDATED:-}" == 1 || (-n "$marker" && -e "$marker") ]]; then
    return 0
  fi
  info "apt-get update"
  apt_get update
  export TESSERA_CI_APT_UPDATED=1
  if [[ -n "$marker" ]]; then : >"$marker"; fi
}

# Install Debian packages that are not installed yet (no-op when all are there).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    apt_update_once
    info "apt-get install ${missing[*]}"
    apt_get install -y --no-install-recommends "${missing[@]}"
  fi
}
