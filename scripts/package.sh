#!/usr/bin/env bash
# Builds the Debian package target/debian/preload_VERSION_amd64.deb with cargo-deb, from the
# [package.metadata.deb] section of Cargo.toml: preload and preload-seal in /usr/bin, their
# manual pages (gzipped), README and copyright in /usr/share/doc/preload, and the binfmt_misc
# registration of sealed containers in /usr/lib/binfmt.d/preload-sealed.conf. No file
# capability is granted (README, Security). Installs cargo-deb first when it is missing
# (`cargo install cargo-deb --locked`, a few minutes). Extra arguments go to `cargo deb`.
# scripts/check-package.sh checks the result without installing it.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/package.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed (Rust toolchain 1.95+ is required)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "scripts/package.sh: installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked
fi

pkgid=$(cargo pkgid)
version=${pkgid##*[#@]}
deb="target/debian/preload_${version}_amd64.deb"
# --no-strip: the release profile strips already (strip = true), and preload's one-segment
# layout (linker.ld) is best left exactly as the linker made it.
cargo deb --no-strip --output "$deb" "$@"
