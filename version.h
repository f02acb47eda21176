/* version.h - kbridge's version: the one definition every module prints
 * (--version, /stats, /metrics, /asyncapi.json). A build may override it
 * with -DKBRIDGE_VERSION=... */
#ifndef KB_VERSION_H
#define KB_VERSION_H
#ifndef KBRIDGE_VERSION
#define KBRIDGE_VERSION "0.1.0"
#endif
#endif
