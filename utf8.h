/* utf8.h - strict incremental UTF-8 validation (RFC 3629): rejects overlong
 * forms, surrogates (U+D800..U+DFFF) and code points above U+10FFFF at the
 * first byte that makes the sequence impossible, so a text message split
 * across WebSocket fragments at any byte is checked as it arrives. */
#ifndef KB_UTF8_H
#define KB_UTF8_H
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u   /* between code points: the text so far is valid */
#define UTF8_REJECT 1u   /* invalid; stays here for any further input */

/* Feeds n bytes starting from state (UTF8_ACCEPT for a new text) and returns
 * the new state: UTF8_ACCEPT, UTF8_REJECT, or another value meaning "inside
 * a code point". A complete text is valid iff the final state is UTF8_ACCEPT. */
uint32_t utf8_feed(uint32_t state, const void *s, size_t n);

/* 1 if s[0..n) is complete, valid UTF-8. */
int utf8_valid(const void *s, size_t n);

/* Length (1-4) of the complete, valid sequence that starts s[0..n), storing
 * its code point in *cp when cp is not NULL; 0 if s does not start with one
 * (invalid, truncated, or n == 0). */
size_t utf8_decode(const void *s, size_t n, uint32_t *cp);
#endif
