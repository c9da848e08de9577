#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Makes the pgvector extension available to the local PostgreSQL server.
#
# When `vector` is missing from pg_available_extensions, builds it from the
# Debian trixie source package (bookworm has no pgvector for PostgreSQL 15):
#   - installs postgresql-server-dev-NN and build-essential from the system's apt sources;
#   - fetches the source with a PRIVATE apt configuration (its own sources list,
#     lists and cache in a temp dir) holding one `deb-src ... trixie main` entry on
#     the mirror the system is already configured with, verified with the Debian
#     archive keyring; the system's own apt sources are never touched;
#   - unpacks it with dpkg-source, then `make && make install` against PG_CONFIG.
# Idempotent: does nothing when the extension is already available.
#
# Expects the server to be up (scripts/ci/postgres.sh starts it).
# Env: PG_MAJOR (15), PGVECTOR_SRC_SUITE (trixie), PG_URL_ADMIN (psql connection).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
SRC_SUITE="${PGVECTOR_SRC_SUITE:-trixie}"
ADMIN_URL="${PG_URL_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

vector_available() {
  [[ "$(psql "$ADMIN_URL" -X -v ON_ERROR_STOP=1 -Atc \
    "SELECT 1 FROM pg_available_extensions WHERE name='vector'")" == 1 ]]
}

if vector_available; then
  info "pgvector: already available to PostgreSQL $PG_MAJOR ($(psql "$ADMIN_URL" -X -Atc \
    "SELECT default_version FROM pg_available_extensions WHERE name='vector'")), skipping the build"
  exit 0
fi

started=$SECONDS
info "pgvector: not available; building it from the Debian $SRC_SUITE source package"

# Build dependencies, from the system's own apt sources.
apt_install "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev
[[ -x "$PG_CONFIG" ]] || die "$PG_CONFIG not found after installing postgresql-server-dev-$PG_MAJOR"
[[ -r "$KEYRING" ]] || apt_install debian-archive-keyring
info "pgvector: build dependencies ready after $((SECONDS - started))s"

mirror="$("$here/debian-mirror.sh")"
info "pgvector: Debian mirror from the system apt sources: $mirror"

work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-pgvector.XXXXXX")"
trap 'rm -rf "$work"' EXIT
apt_dir="$work/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$work/src"
: >"$apt_dir/sources.list"
cat >"$apt_dir/sources.list.d/pgvector-src.sources" <<SOURCES
Types: deb-src
URIs: $mirror
Suites: $SRC_SUITE
Components: main
Signed-By: $KEYRING
SOURCES
# Let apt's unprivileged downloader (_apt) write there, so it stays sandboxed.
chmod 755 "$work"
if id _apt >/dev/null 2>&1; then
  chown -R _apt "$apt_dir/lists" "$apt_dir/cache" "$work/src"
fi

private_apt=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
)

info "pgvector: fetching the $SRC_SUITE source index (private apt configuration in $apt_dir)"
apt_get "${private_apt[@]}" update
info "pgvector: apt-get source --download-only pgvector"
(cd "$work/src" && apt_get "${private_apt[@]}" source --download-only pgvector)

dsc="$(find "$work/src" -maxdepth 1 -name 'pgvector_*.dsc' | head -n1)"
[[ -n "$dsc" ]] || die "apt-get source did not download a pgvector .dsc"
info "pgvector: unpacking $(basename "$dsc")"
# apt already checked every file against the signed Sources index; dpkg-source may
# only warn that it cannot check the .dsc's own signature (no debian-keyring here).
(cd "$work/src" && dpkg-source -x "$dsc" pgvector)

info "pgvector: make (PG_CONFIG=$PG_CONFIG)"
build_started=$SECONDS
make -C "$work/src/pgvector" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
info "pgvector: make install"
make -C "$work/src/pgvector" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install
info "pgvector: compiled and installed in $((SECONDS - build_started))s"

vector_available || die "pgvector was installed but PostgreSQL $PG_MAJOR still does not list the vector extension"
info "pgvector: now available ($(psql "$ADMIN_URL" -X -Atc \
  "SELECT default_version FROM pg_available_extensions WHERE name='vector'")); took $((SECONDS - started))s in all"
