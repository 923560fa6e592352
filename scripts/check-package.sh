#!/usr/bin/env bash
# Checks the Debian package without installing it (dpkg -i would change this machine): builds
# it with scripts/package.sh unless a .deb is given, lists it (dpkg-deb -c), extracts it
# (dpkg-deb -x) into a temporary directory and runs what it holds from there. Not part of
# scripts/test.sh or CI: installing cargo-deb takes minutes.
#
#     scripts/check-package.sh [PACKAGE.deb]
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/check-package.sh: FAILED: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
need() { command -v "$1" >/dev/null || fail "$1 is missing: apt-get install $2"; }
need dpkg-deb dpkg
need man man-db
need groff groff-base
need getcap libcap2-bin

if [ $# -ge 1 ]; then
  deb=$1
else
  scripts/package.sh >/dev/null
  pkgid=$(cargo pkgid)
  deb="target/debian/preload_${pkgid##*[#@]}_amd64.deb"
fi
[ -f "$deb" ] || fail "$deb does not exist"
echo "checking $deb"

# The files, their modes, and nothing else.
expected="-rwxr-xr-x ./usr/bin/preload
-rwxr-xr-x ./usr/bin/preload-seal
-rw-r--r-- ./usr/lib/binfmt.d/preload-sealed.conf
-rw-r--r-- ./usr/share/doc/preload/README.md
-rw-r--r-- ./usr/share/doc/preload/copyright
-rw-r--r-- ./usr/share/man/man1/preload-seal.1.gz
-rw-r--r-- ./usr/share/man/man1/preload.1.gz"
listed=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $1, $6 }' | sort -k2)
[ "$listed" = "$expected" ] || fail "dpkg-deb -c lists
$listed
instead of
$expected"
ok "dpkg-deb -c: the 7 files with their modes"

# No maintainer script, so nothing grants a capability or registers anything at install.
control=$(dpkg-deb -I "$deb")
if grep -Eq '(postinst|preinst|prerm|postrm)' <<<"$control"; then fail "the package has maintainer scripts"; fi
grep -q '^ Package: preload$' <<<"$control" || fail "control: no Package: preload"
grep -q '^ Architecture: amd64$' <<<"$control" || fail "control: not amd64"
ok "dpkg-deb -I: package preload, amd64, no maintainer scripts"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"

out=$("$root/usr/bin/preload" /bin/true && echo "status $?") || fail "extracted preload /bin/true: status $?"
[ "$out" = "status 0" ] || fail "extracted preload /bin/true printed $out"
out=$("$root/usr/bin/preload" /bin/echo hello from the package) || fail "extracted preload /bin/echo"
[ "$out" = "hello from the package" ] || fail "extracted preload /bin/echo printed $out"
version=$(sed -n 's/^ Version: //p' <<<"$control")
[ "$("$root/usr/bin/preload" --version)" = "preload $version" ] || fail "preload --version is not the package's $version"
ok "usr/bin/preload runs /bin/true (status 0) and /bin/echo, and is version $version"

caps=$(getcap "$root/usr/bin/preload" "$root/usr/bin/preload-seal")
[ -z "$caps" ] || fail "file capabilities in the package: $caps"
ok "no file capabilities on the extracted binaries"

for page in preload preload-seal; do
  file="$root/usr/share/man/man1/$page.1.gz"
  gzip -t "$file" || fail "$file is not gzip"
  warnings=$(man --warnings=w -l "$file" 2>&1 >/dev/null) || fail "man -l $file failed"
  [ -z "$warnings" ] || fail "man -l $file warns: $warnings"
  MANWIDTH=80 man -l "$file" 2>/dev/null | grep -q "^NAME" || fail "man -l $file shows no NAME section"
done
ok "man -l renders both gzipped pages without warnings"

line=$("$root/usr/bin/preload-seal" --binfmt)
[ "$line" = "$(cat "$root/usr/lib/binfmt.d/preload-sealed.conf")" ] || fail "binfmt.d file differs from preload-seal --binfmt"
ok "usr/lib/binfmt.d/preload-sealed.conf is preload-seal --binfmt: $line"

# Seal a program with the extracted preload-seal and run it with the extracted preload.
"$root/usr/bin/preload-seal" --new-key "$root/key"
cp /bin/echo "$root/echo"
"$root/usr/bin/preload-seal" --key-file "$root/key" -o "$root/echo.sealed" "$root/echo"
out=$(PRELOAD_KEY_FD=3 "$root/usr/bin/preload" "$root/echo.sealed" sealed and run 3<"$root/key") \
  || fail "the sealed echo did not run"
[ "$out" = "sealed and run" ] || fail "the sealed echo printed $out"
ok "a program sealed by usr/bin/preload-seal runs through usr/bin/preload"

grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
  "$root/usr/share/doc/preload/copyright" || fail "copyright is not DEP-5"
ok "usr/share/doc/preload/copyright is DEP-5"
echo "all checks passed"
