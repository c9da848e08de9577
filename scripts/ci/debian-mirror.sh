#!/usr/bin/env bash
# Prints the URI of the main Debian archive this machine's apt is configured with
# (e.g. http://deb.debian.org/debian), read from the system apt sources:
# deb822 files (/etc/apt/sources.list.d/*.sources) and one-line files
# (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list). Security and other
# non-archive entries are skipped; an entry for this release's own codename
# (e.g. "bookworm") whose URI ends in /debian is preferred.
set -euo pipefail

etc="${APT_ETC_DIR:-/etc/apt}"   # overridable for testing
codename=""
if [[ -r /etc/os-release ]]; then
  codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
fi

candidates() {
  local f
  # deb822 stanzas
  for f in "$etc"/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    awk -v codename="$codename" '
      function flush(   n, i, u, s, ns, j, has_codename, prio) {
        if (uris != "" && types ~ /(^|[ \t])deb(-src)?([ \t]|$)/ && tolower(enabled) != "no") {
          ns = split(suites, s, /[ \t]+/); has_codename = 0
          for (j = 1; j <= ns; j++) if (s[j] == codename) has_codename = 1
          n = split(uris, u, /[ \t]+/)
          for (i = 1; i <= n; i++) {
            if (u[i] == "" || u[i] ~ /security/ || u[i] !~ /^(https?|ftp):\/\//) continue
            prio = 3
            if (u[i] ~ /\/debian\/?$/) prio -= 1
            if (has_codename) prio -= 2
            print prio, u[i]
          }
        }
        types = uris = suites = enabled = last = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ {                      # continuation line of the previous field
        v = $0; sub(/^[ \t]+/, "", v)
        if (last == "uris") uris = uris " " v
        else if (last == "suites") suites = suites " " v
        else if (last == "types") types = types " " v
        next
      }
      /^[A-Za-z0-9-]+:/ {
        key = tolower(substr($0, 1, index($0, ":") - 1))
        v = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
        if (key == "types") types = v
        else if (key == "uris") uris = v
        else if (key == "suites") suites = v
        else if (key == "enabled") enabled = v
        last = key
        next
      }
      END { flush() }
    ' "$f"
  done
  # one-line format: deb [options] URI suite component...
  for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    awk -v codename="$codename" '
      { sub(/#.*/, "") }
      $1 == "deb" || $1 == "deb-src" {
        line = $0; sub(/^[ \t]*deb(-src)?[ \t]+/, "", line)
        if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
        split(line, f, /[ \t]+/)
        uri = f[1]; suite = f[2]
        if (uri ~ /security/ || uri !~ /^(https?|ftp):\/\//) next
        prio = 3
        if (uri ~ /\/debian\/?$/) prio -= 1
        if (suite == codename) prio -= 2
        print prio, uri
      }
    ' "$f"
  done
}

mirror="$(candidates | sort -s -n -k1,1 | head -n1 | cut -d' ' -f2-)"
if [[ -z "$mirror" ]]; then
  echo "ERROR: could not find a Debian mirror in the system apt sources" >&2
  exit 1
fi
printf '%s\n' "${mirror%/}"
