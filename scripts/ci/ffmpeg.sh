#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs ffmpeg (and ffprobe) from Debian when it is not on PATH. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

if command -v ffmpeg >/dev/null 2>&1; then
  info "ffmpeg already installed: $(command -v ffmpeg)"
else
  apt_update_once
  info "apt-get install ffmpeg"
  apt_get install -y --no-install-recommends ffmpeg
  command -v ffmpeg >/dev/null 2>&1 || die "ffmpeg is still not on PATH after apt-get install ffmpeg"
fi
info "$(ffmpeg -hide_banner -version | head -n1)"
if command -v ffprobe >/dev/null 2>&1; then info "ffprobe: $(command -v ffprobe)"; fi
