/* version.h - kbridge's version: the one definition every module prints
 * (--version, /stats, /metrics, /asyncapi.json). A build may override it
 * with -DKBRIDGE_VERSION=... KBRIDGE_TARGET names what the binary was built
 * for (architecture and C library: "aarch64-linux-musl" for the static arm64
 * build), so a fleet of mixed edge boxes can tell its binaries apart. */
#ifndef KB_VERSION_H
#define KB_VERSION_H
#include <limits.h> /* defines __GLIBC__ under glibc (not under musl) */
#ifndef KBRIDGE_VERSION
#define KBRIDGE_VERSION "0.1.0"
#endif
#if defined(__aarch64__)
#define KBRIDGE_ARCH "aarch64"
#elif defined(__x86_64__)
#define KBRIDGE_ARCH "x86_64"
#else
#define KBRIDGE_ARCH "unknown"
#endif
#if defined(__GLIBC__)
#define KBRIDGE_TARGET KBRIDGE_ARCH "-linux-gnu"
#else
#define KBRIDGE_TARGET KBRIDGE_ARCH "-linux-musl"
#endif
#endif
