# Third-party versions and checksums: the ONE place they are pinned.
# Plain NAME=value lines (no spaces) so this file is valid both as a Make
# include and as a POSIX sh script (". deps/versions.mk").
# Bumping any value here changes the cache key, so the next build rebuilds.
# *_RECIPE: bump when deps/build.sh changes how that flavour is built.
DEV_RECIPE=1
STATIC_RECIPE=3

# librdkafka: taken from its copy vendored in this npm package (under
# package/deps/librdkafka). The sha256 is of the tarball `npm pack` writes.
LIBRDKAFKA_VERSION=2.15.1
LIBRDKAFKA_VERSION_HEX=0x020f01ff
LIBRDKAFKA_NPM_PKG=@confluentinc/kafka-javascript
LIBRDKAFKA_NPM_VERSION=1.10.1
LIBRDKAFKA_NPM_TGZ=confluentinc-kafka-javascript-1.10.1.tgz
LIBRDKAFKA_NPM_SHA256=ada7d703bb1d3237e2292bfabf438d663b6160c9f1ac2a2406b5dc4257c81b66

# Static (musl) flavours only. The C library: Debian 12's musl, the
# musl-dev package of the target architecture (musl-dev:amd64 comes with
# musl-tools; musl-dev:arm64 is installed multiarch for the aarch64 cross
# build). deps/build.sh refuses another version.
MUSL_DEB_VERSION=1.2.3-1

# Debian 12 (bookworm) source packages, fetched
# with `apt-get source --download-only PKG=VERSION`. Only the upstream orig
# tarball is used (no Debian patches); its sha256 is pinned.
# Debian drops superseded versions from its archive: if a fetch fails with
# "no longer in the archive", pick the current one (apt-cache showsrc PKG)
# and update the version, file name and sha256 together.
ZLIB_DEB_PKG=zlib
ZLIB_DEB_VERSION=1:1.2.13.dfsg-1
ZLIB_ORIG=zlib_1.2.13.dfsg.orig.tar.bz2
ZLIB_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1

ZSTD_DEB_PKG=libzstd
ZSTD_DEB_VERSION=1.5.4+dfsg2-5
ZSTD_ORIG=libzstd_1.5.4+dfsg2.orig.tar.xz
ZSTD_SHA256=8cf4bbb65e77ec348d052c8d6230eba66d435bddf64c8b5be2fcb16880c19953

OPENSSL_DEB_PKG=openssl
OPENSSL_DEB_VERSION=3.0.20-1~deb12u2
OPENSSL_ORIG=openssl_3.0.20.orig.tar.gz
OPENSSL_SHA256=c80a01dfc70ece4dc21168932c37739042d404d46ccc81a5986dd75314ecda6f
