#!/bin/sh
# Build kbridge's third-party libraries from pinned, checksummed sources into
# a cache outside the work tree ($KBRIDGE_CACHE, default ~/.cache/kbridge).
#
#   deps/build.sh dev            librdkafka.a with gcc, against Debian's -dev libs
#   deps/build.sh static-ARCH    zlib, zstd, OpenSSL, librdkafka with musl for
#                                ARCH = x86_64 or aarch64 (static = static-x86_64);
#                                a foreign ARCH uses Debian's cross gcc and
#                                multiarch musl-dev, and runs its smoke tests
#                                under qemu-user-static
#   deps/build.sh prefix FLAVOUR print the install prefix (used by deps/deps.mk)
#   deps/build.sh check FLAVOUR  the installed musl is the pinned one (deps/deps.mk)
#   deps/build.sh fetch          download + verify every source only
#   deps/build.sh showsrc        Debian source versions available now (to bump pins)
#
# Each flavour installs into $KBRIDGE_CACHE/<flavour>-<librdkafka>-<key>, where
# <key> hashes the pins in deps/versions.mk that the flavour uses (and the
# target architecture; including
# DEV_RECIPE / STATIC_RECIPE, bumped when this script's build steps change):
# any change gets a fresh prefix, so it rebuilds. <prefix>/.stamp is written
# only after the smoke test passed; a run that finds it does nothing.
# Network use: apt (Debian archive) and npm only.
set -eu

DEPS_DIR=$(cd "$(dirname "$0")" && pwd)
. "$DEPS_DIR/versions.mk"
KBRIDGE_CACHE=${KBRIDGE_CACHE:-$HOME/.cache/kbridge}
JOBS=${JOBS:-2}
# Cache keys: hashes of the pins each flavour depends on (comments ignored).
key_of() { # flavour
    case $1 in
    dev) grep -E '^(LIBRDKAFKA_|DEV_RECIPE=)' "$DEPS_DIR/versions.mk" ;;
    *) grep -E '^[A-Z]' "$DEPS_DIR/versions.mk" | grep -v '^DEV_RECIPE=' && echo "flavour=$1" ;;
    esac | sha256sum | cut -c1-12
}
DL="$KBRIDGE_CACHE/downloads"

# Features both flavours must report in builtin.features.
REQUIRED_FEATURES=gzip,snappy,lz4,zstd,ssl,sasl_plain,sasl_scram

say() { echo "deps: $*" >&2; }
die() { echo "deps: ERROR: $*" >&2; exit 1; }

prefix_of() { echo "$KBRIDGE_CACHE/$1-$LIBRDKAFKA_VERSION-$(key_of "$1")"; }

# Run a noisy step with its output in a log; on failure show the log's tail
# and end with one clear line.
run() {
    _log=$1; shift
    if ! "$@" >>"$_log" 2>&1; then
        tail -n 40 "$_log" >&2
        die "step failed: $* (full log: $_log)"
    fi
}

# --- prerequisites ---------------------------------------------------------

# Install Debian packages that are missing; `apt-get update` only if the
# plain install fails (e.g. a fresh machine with no package lists yet).
need_pkgs() {
    _missing=
    for _p in "$@"; do
        dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q 'ok installed' ||
            _missing="$_missing $_p"
    done
    [ -z "$_missing" ] && return 0
    say "installing Debian packages:$_missing"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install:$_missing"
    # shellcheck disable=SC2086
    apt_retry install -y --no-install-recommends $_missing ||
        { apt_retry update && apt_retry install -y --no-install-recommends $_missing; } ||
        die "apt-get install failed for:$_missing"
}

# apt-get, waiting (up to ~10 min) while another apt/dpkg holds the lock.
apt_retry() {
    _i=0
    while :; do
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" && return 0
        _i=$((_i + 1))
        [ $_i -ge 3 ] && return 1
        sleep 10
    done
}

# --- fetch + verify --------------------------------------------------------

check_sha() { # file expected-sha256
    _got=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$_got" = "$2" ] ||
        die "sha256 mismatch for $(basename "$1"): expected $2, got $_got (pinned in deps/versions.mk)"
}

# librdkafka source: `npm pack` the pinned npm package, check the tarball.
fetch_librdkafka() {
    _f="$DL/$LIBRDKAFKA_NPM_TGZ"
    if [ ! -f "$_f" ]; then
        command -v npm >/dev/null 2>&1 || need_pkgs npm
        _t=$(mktemp -d "$DL/npm.XXXXXX")
        say "npm pack $LIBRDKAFKA_NPM_PKG@$LIBRDKAFKA_NPM_VERSION"
        (cd "$_t" && npm pack --ignore-scripts --silent \
            "$LIBRDKAFKA_NPM_PKG@$LIBRDKAFKA_NPM_VERSION" >/dev/null) ||
            die "npm pack $LIBRDKAFKA_NPM_PKG@$LIBRDKAFKA_NPM_VERSION failed"
        [ -f "$_t/$LIBRDKAFKA_NPM_TGZ" ] ||
            die "npm pack did not produce $LIBRDKAFKA_NPM_TGZ"
        check_sha "$_t/$LIBRDKAFKA_NPM_TGZ" "$LIBRDKAFKA_NPM_SHA256"
        mv "$_t/$LIBRDKAFKA_NPM_TGZ" "$_f"
        rm -rf "$_t"
    fi
    check_sha "$_f" "$LIBRDKAFKA_NPM_SHA256"
}

# Private apt configuration holding deb-src twins of the machine's Debian
# entries: the system's sources stay untouched, and the archive host is
# read from the machine's own config rather than written anywhere here.
APT_DIR="$KBRIDGE_CACHE/apt"
apt_src() { # apt-get or apt-cache, then its arguments
    _tool=$1; shift
    "$_tool" -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$APT_DIR/sources" \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::Cache="$APT_DIR/cache" "$@"
}
setup_apt_src() {
    [ -f "$APT_DIR/ready" ] && return 0
    rm -rf "$APT_DIR"
    mkdir -p "$APT_DIR/sources" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
    # deb822 files: copy stanzas whose URI is a Debian archive, as deb-src.
    for _s in /etc/apt/sources.list.d/*.sources; do
        [ -f "$_s" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
            { keep = 0; off = 0
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:.*\/debian(-security)?\/?([ \t]|$)/) keep = 1
                if ($i ~ /^Enabled:[ \t]*no/) off = 1 }
              if (!keep || off) next
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^Types:/) print "Types: deb-src"
                else if ($i !~ /^#/) print $i }
              print "" }' "$_s"
    done >"$APT_DIR/sources/kbridge-src.sources"
    # one-line files: "deb [opts] URI suite comp..." becomes "deb-src ...".
    for _s in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$_s" ] || continue
        sed -n 's|^[ \t]*deb[ \t]\(.*/debian\(-security\)\{0,1\}/\{0,1\}[ \t].*\)$|deb-src \1|p' "$_s"
    done >"$APT_DIR/sources/kbridge-src.list"
    [ -s "$APT_DIR/sources/kbridge-src.sources" ] || [ -s "$APT_DIR/sources/kbridge-src.list" ] ||
        die "no Debian archive entry found in /etc/apt/sources.list* to derive deb-src from"
    say "apt-get update (private deb-src lists in $APT_DIR)"
    run "$APT_DIR/update.log" apt_src apt-get update
    touch "$APT_DIR/ready"
}

# Debian source package: fetch with apt-get source, keep only the orig tarball.
fetch_deb_orig() { # pkg version orig-file sha256
    _f="$DL/$3"
    if [ ! -f "$_f" ]; then
        setup_apt_src
        _t=$(mktemp -d "$DL/apt.XXXXXX")
        say "apt-get source $1=$2"
        if ! (cd "$_t" && apt_src apt-get source --download-only "$1=$2" >"$_t/log" 2>&1); then
            tail -n 5 "$_t/log" >&2
            # the private index may just be stale: the next run refreshes it.
            rm -f "$APT_DIR/ready"
            die "apt-get source $1=$2 failed (no longer in the archive? 'deps/build.sh showsrc' lists current versions; pins are in deps/versions.mk)"
        fi
        [ -f "$_t/$3" ] || die "apt-get source $1=$2 did not produce $3"
        check_sha "$_t/$3" "$4"
        mv "$_t/$3" "$_f"
        rm -rf "$_t"
    fi
    check_sha "$_f" "$4"
}

# For bumping pins: what the archive offers now, with orig tarball sha256.
showsrc() {
    rm -f "$APT_DIR/ready"
    setup_apt_src
    apt_src apt-cache showsrc "$ZLIB_DEB_PKG" "$ZSTD_DEB_PKG" "$OPENSSL_DEB_PKG" |
        awk '/^Package:/ { p = $2 } /^Version:/ { v = $2 }
             /^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 }
             s && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ { print p, v, $3, $1 }' | sort -u
}

fetch_all_static() {
    fetch_librdkafka
    fetch_deb_orig "$ZLIB_DEB_PKG" "$ZLIB_DEB_VERSION" "$ZLIB_ORIG" "$ZLIB_SHA256"
    fetch_deb_orig "$ZSTD_DEB_PKG" "$ZSTD_DEB_VERSION" "$ZSTD_ORIG" "$ZSTD_SHA256"
    fetch_deb_orig "$OPENSSL_DEB_PKG" "$OPENSSL_DEB_VERSION" "$OPENSSL_ORIG" "$OPENSSL_SHA256"
}

# Unpack a tarball into $WORK/<name> (the top directory is stripped).
unpack() { # tarball name
    rm -rf "${WORK:?}/$2"
    mkdir -p "$WORK/$2"
    tar -xf "$1" -C "$WORK/$2" --strip-components=1 || die "cannot unpack $1"
}

unpack_librdkafka() {
    rm -rf "${WORK:?}/librdkafka" "$WORK/npm"
    mkdir -p "$WORK/npm"
    tar -xzf "$DL/$LIBRDKAFKA_NPM_TGZ" -C "$WORK/npm" package/deps/librdkafka ||
        die "$LIBRDKAFKA_NPM_TGZ has no package/deps/librdkafka"
    mv "$WORK/npm/package/deps/librdkafka" "$WORK/librdkafka"
    rm -rf "$WORK/npm"
    _v=$(sed -n 's/^#define[ \t]*RD_KAFKA_VERSION[ \t]*\(0x[0-9a-fA-F]*\).*/\1/p' \
        "$WORK/librdkafka/src/rdkafka.h")
    [ "$_v" = "$LIBRDKAFKA_VERSION_HEX" ] ||
        die "librdkafka version mismatch: src/rdkafka.h has RD_KAFKA_VERSION $_v, expected $LIBRDKAFKA_VERSION_HEX ($LIBRDKAFKA_VERSION)"
}

# --- librdkafka ------------------------------------------------------------

# Shared by both flavours. Only src/ is built (no C++ binding, no shared
# library, no examples). lz4 uses librdkafka's bundled copy.
build_librdkafka() { # prefix log [extra configure args...]
    _p=$1; _log=$2; shift 2
    (
        cd "$WORK/librdkafka"
        # configure insists on a C++ compiler though only C is built here;
        # handing it the C compiler saves installing g++.
        export CXX="${CC:-gcc}"
        run "$_log" ./configure --prefix="$_p" --no-download \
            --enable-ssl --enable-zlib --enable-zstd \
            --disable-gssapi --disable-curl --disable-lz4-ext "$@"
        # the summary must list what we asked for; configure may silently
        # drop a "try" feature otherwise.
        for _w in ZLIB SSL ZSTD SNAPPY SASL_SCRAM; do
            grep -q "^WITH_$_w=[[:space:]]*y" Makefile.config ||
                die "librdkafka configure did not enable $_w (see $_log)"
        done
        run "$_log" make -j"$JOBS" -C src librdkafka.a
        mkdir -p "$_p/include/librdkafka" "$_p/lib"
        cp src/rdkafka.h src/rdkafka_mock.h "$_p/include/librdkafka/"
        cp src/librdkafka.a "$_p/lib/"
        sed -n 's/^LIBS+=[[:space:]]*//p' Makefile.config >"$_p/lib/librdkafka.libs"
    )
}

# Link deps/smoke.c against the fresh prefix and run it ($EMU: the emulator
# a foreign architecture's programs run under, else empty).
smoke() { # cc prefix log libs...
    _cc=$1; _p=$2; _log=$3; shift 3
    # shellcheck disable=SC2086 # $_cc may carry flags ("musl-gcc -static")
    run "$_log" $_cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
        -isystem "$_p/include" -o "$_p/smoke" "$DEPS_DIR/smoke.c" "$@"
    ${EMU:-} "$_p/smoke" "$REQUIRED_FEATURES" >"$_p/smoke.out" 2>>"$_log" ||
        { cat "$_p/smoke.out" >&2; die "smoke test failed for $_p (log: $_log)"; }
    sed 's/^/deps:   /' "$_p/smoke.out" >&2
}

# Start a flavour: returns 1 (skip) if already built; else sets T (the
# prefix, built in place: pkg-config files record it), WORK (scratch), LOG.
# A prefix without its stamp is a failed build and is started afresh.
begin() { # flavour
    T=$(prefix_of "$1")
    if [ -f "$T/.stamp" ]; then
        say "$1 libraries up to date: $T"
        return 1
    fi
    WORK="$T.work"
    LOG="$WORK/build.log"
    rm -rf "$T" "$WORK"
    mkdir -p "$T" "$WORK"
    say "building $1 libraries into $T (log: $LOG)"
    START=$(date +%s)
}

finish() { # flavour
    {
        echo "flavour=$1"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(($(date +%s) - START))"
        cat "$DEPS_DIR/versions.mk"
    } >"$T/BUILD_INFO"
    rm -rf "$WORK"
    # written last: its presence means "built and smoke-tested".
    touch "$T/.stamp"
    say "$1 done in $(($(date +%s) - START))s: $T"
}

build_dev() {
    begin dev || return 0
    need_pkgs gcc make pkg-config libc6-dev libssl-dev zlib1g-dev libzstd-dev
    fetch_librdkafka
    unpack_librdkafka
    build_librdkafka "$T" "$LOG"
    smoke gcc "$T" "$LOG" "$T/lib/librdkafka.a" \
        -lssl -lcrypto -lzstd -lz -lpthread -lm -ldl
    finish dev
}

# --- static (musl) flavour -------------------------------------------------

# The target: set by set_target from the flavour name (static-ARCH).
#   ARCH      x86_64 or aarch64 (uname -m spelling)
#   DEB_ARCH  Debian's name for it (amd64, arm64)
#   MUSL_CC   Debian's musl wrapper for it: <ARCH>-linux-musl-gcc, in
#             musl-dev:<DEB_ARCH>, runs <ARCH>-linux-gnu-gcc with musl's specs
#   BINPFX    binutils prefix (<ARCH>-linux-gnu-): ar, ranlib, strip
#   EMU       empty on a host of that architecture, else qemu-<ARCH>-static
set_target() { # flavour
    case $1 in
    static | static-x86_64) ARCH=x86_64 DEB_ARCH=amd64 OSSL_TARGET=linux-x86_64 ;;
    static-aarch64) ARCH=aarch64 DEB_ARCH=arm64 OSSL_TARGET=linux-aarch64 ;;
    *) die "unknown flavour $1 (static-x86_64 or static-aarch64)" ;;
    esac
    FLAVOUR=static-$ARCH
    MUSL_CC=$ARCH-linux-musl-gcc
    BINPFX=$ARCH-linux-gnu-
    EMU=
    [ "$(uname -m)" = "$ARCH" ] || EMU=qemu-$ARCH-static
}

# A foreign target needs Debian's cross gcc and binutils, its musl-dev from
# the foreign architecture (multiarch: dpkg --add-architecture), and qemu
# to run the smoke tests. The musl version is the pin in versions.mk.
# The installed musl-dev of the target against the pin (also run by make
# before every static link: the libraries are cached, musl is not).
check_musl() {
    _musl=$(dpkg-query -W -f='${Version}' "musl-dev:$DEB_ARCH" 2>/dev/null) ||
        die "musl-dev:$DEB_ARCH is not installed (deps/build.sh $FLAVOUR installs it)"
    [ "$_musl" = "$MUSL_DEB_VERSION" ] ||
        die "musl-dev:$DEB_ARCH is $_musl, deps/versions.mk pins MUSL_DEB_VERSION=$MUSL_DEB_VERSION (update the pin after checking the new version builds)"
    command -v "$MUSL_CC" >/dev/null 2>&1 || die "$MUSL_CC not found (package musl-dev:$DEB_ARCH)"
}

need_target() {
    _pkgs="gcc make perl pkg-config bzip2 xz-utils file"
    if [ -z "$EMU" ]; then
        _pkgs="$_pkgs musl-tools"
    else
        if ! dpkg --print-foreign-architectures 2>/dev/null | grep -qx "$DEB_ARCH"; then
            [ "$(id -u)" = 0 ] || die "need root to add the $DEB_ARCH architecture (dpkg --add-architecture $DEB_ARCH)"
            say "dpkg --add-architecture $DEB_ARCH (multiarch, for musl-dev:$DEB_ARCH)"
            # An archive without $DEB_ARCH indexes would leave every later
            # apt-get update failing: the architecture is removed again then.
            if ! { dpkg --add-architecture "$DEB_ARCH" && apt_retry update >/dev/null; }; then
                dpkg --remove-architecture "$DEB_ARCH" 2>/dev/null
                die "could not add the $DEB_ARCH architecture to dpkg/apt (no $DEB_ARCH packages in the archive?)"
            fi
        fi
        _gnu=$(echo "$ARCH" | tr _ -)-linux-gnu
        _pkgs="$_pkgs gcc-$_gnu binutils-$_gnu musl-dev:$DEB_ARCH qemu-user-static"
    fi
    # shellcheck disable=SC2086
    need_pkgs $_pkgs
    check_musl
}

# Size matters here (edge boxes, FROM scratch): per-function sections let the
# final link (-Wl,--gc-sections) drop unused code. librdkafka and OpenSSL's C
# parts use -Os (OpenSSL's hot paths are assembly either way); zlib and zstd
# keep -O2 because their speed is the codec's speed.
SIZE_CFLAGS="-Os -ffunction-sections -fdata-sections"
SPEED_CFLAGS="-O2 -ffunction-sections -fdata-sections"

build_zlib() {
    unpack "$DL/$ZLIB_ORIG" zlib
    (
        cd "$WORK/zlib"
        run "$LOG" env CC="$MUSL_CC" AR="${BINPFX}ar" RANLIB="${BINPFX}ranlib" \
            CFLAGS="$SPEED_CFLAGS" ./configure --static --prefix="$T"
        run "$LOG" make -j"$JOBS" libz.a
        run "$LOG" make install
    )
}

build_zstd() {
    unpack "$DL/$ZSTD_ORIG" zstd
    # Kafka never carries pre-1.0 zstd frames: legacy decoders only cost size.
    (
        cd "$WORK/zstd/lib"
        set -- CC="$MUSL_CC" AR="${BINPFX}ar" PREFIX="$T" ZSTD_LEGACY_SUPPORT=0 CFLAGS="$SPEED_CFLAGS"
        run "$LOG" make -j"$JOBS" libzstd.a "$@"
        run "$LOG" make install-static install-includes install-pc "$@"
    )
}

# Only the library is built and installed (no apps, docs, tests, engines).
# musl-gcc cannot see the kernel headers, hence no-afalgeng and
# no-secure-memory. No -static here: it makes Configure silently drop
# threads. Kept: TLS 1.2/1.3, the default provider (HMAC, SHA-2, PBKDF2 for
# SCRAM), X.509, PKCS#12 (librdkafka's ssl.keystore.location), 3DES/DH/DSA
# (old keystores and servers). Everything else Kafka clients never meet is
# cut for size; deps/tls_smoke.c proves the handshakes still work.
# no-autoload-config: the binary must not read a host's openssl.cnf.
# --openssldir=/etc/ssl: default CA paths match Debian/Alpine hosts.
OPENSSL_OPTS="no-shared no-deprecated no-tests no-engine no-dynamic-engine no-module no-legacy
 no-comp no-ssl3 no-dtls no-srp no-afalgeng no-secure-memory no-autoload-config
 no-ui-console no-ct no-ocsp no-ts no-cms no-srtp no-sctp no-nextprotoneg
 no-idea no-seed no-bf no-cast no-camellia no-aria no-sm2 no-sm3 no-sm4
 no-whirlpool no-md4 no-mdc2 no-rmd160 no-rc2 no-rc4 no-rc5 no-gost no-siphash
 no-blake2 no-ec2m no-scrypt no-siv no-ocb"
build_openssl() {
    unpack "$DL/$OPENSSL_ORIG" openssl
    (
        cd "$WORK/openssl"
        # CC/AR/RANLIB from the environment: OpenSSL's Configure takes them
        # as given (--cross-compile-prefix would prefix the musl wrapper too).
        # shellcheck disable=SC2086
        run "$LOG" env CC="$MUSL_CC" AR="${BINPFX}ar" RANLIB="${BINPFX}ranlib" \
            ./Configure "$OSSL_TARGET" \
            --prefix="$T" --libdir=lib --openssldir=/etc/ssl $OPENSSL_OPTS \
            $SIZE_CFLAGS
        run "$LOG" make -j"$JOBS" build_libs
        run "$LOG" make install_dev
    )
}

build_static() { # flavour
    set_target "$1"
    begin "$FLAVOUR" || return 0
    need_target
    fetch_all_static
    build_zlib
    build_zstd
    build_openssl
    unpack_librdkafka
    # Point configure at our own musl-built dependencies only: PKG_CONFIG_LIBDIR
    # hides the system's (glibc) .pc files. No syslog: nothing listens on
    # /dev/log in a FROM scratch container. The binutils are the target's
    # (mklove and make take them from the environment).
    (
        export CC="$MUSL_CC" CPPFLAGS="-I$T/include" LDFLAGS="-L$T/lib"
        export AR="${BINPFX}ar" RANLIB="${BINPFX}ranlib" NM="${BINPFX}nm" STRIP="${BINPFX}strip"
        export CFLAGS="$SIZE_CFLAGS"
        export PKG_CONFIG_LIBDIR="$T/lib/pkgconfig" PKG_CONFIG_PATH=
        build_librdkafka "$T" "$LOG" --enable-static --disable-syslog
    )
    _libs="$T/lib/librdkafka.a $T/lib/libssl.a $T/lib/libcrypto.a $T/lib/libzstd.a $T/lib/libz.a"
    # shellcheck disable=SC2086
    smoke "$MUSL_CC -static" "$T" "$LOG" -Wl,--gc-sections $_libs
    # shellcheck disable=SC2086
    run "$LOG" $MUSL_CC -static -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror \
        -isystem "$T/include" -o "$T/tls_smoke" "$DEPS_DIR/tls_smoke.c" \
        -Wl,--gc-sections "$T/lib/libssl.a" "$T/lib/libcrypto.a"
    ${EMU:-} "$T/tls_smoke" >"$T/tls_smoke.out" 2>>"$LOG" ||
        { cat "$T/tls_smoke.out" >&2; die "TLS smoke test failed for $T (log: $LOG)"; }
    sed 's/^/deps:   /' "$T/tls_smoke.out" >&2
    "${BINPFX}strip" "$T/smoke" "$T/tls_smoke"
    say "static smoke binary ($ARCH${EMU:+, run under $EMU}): $(stat -c %s "$T/smoke") bytes stripped"
    file "$T/smoke" | grep -q 'statically linked' ||
        die "smoke binary is not statically linked: $(file "$T/smoke")"
    finish "$FLAVOUR"
}

# --- main ------------------------------------------------------------------

usage() { die "usage: $0 dev|static-x86_64|static-aarch64|fetch|showsrc|prefix FLAVOUR|check FLAVOUR (static = static-x86_64)"; }
[ $# -ge 1 ] || usage
case $1 in
prefix)
    [ $# -eq 2 ] || usage
    case $2 in static | static-x86_64 | static-aarch64) set_target "$2"; prefix_of "$FLAVOUR" ;;
    *) prefix_of "$2" ;;
    esac
    exit 0
    ;;
check)
    [ $# -eq 2 ] || usage
    set_target "$2"
    check_musl
    exit 0
    ;;
dev | static | static-x86_64 | static-aarch64 | fetch | showsrc) ;;
*) usage ;;
esac

mkdir -p "$DL"
# One build at a time per cache (make -j may start both flavours).
exec 9>"$KBRIDGE_CACHE/.lock"
flock 9

case $1 in
dev) build_dev ;;
static*) build_static "$1" ;;
fetch) fetch_all_static ;;
showsrc) showsrc ;;
esac
