/* check.h - the whole unit-test harness: CHECK records a failure with its
 * location and keeps going; check_summary() prints "N passed, N failed" and
 * returns the exit status. Include once per test program. */
#ifndef KB_CHECK_H
#define KB_CHECK_H
#include <stdio.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond) do { \
	if (cond) check_pass++; \
	else { check_fail++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* CHECK with a printf-style explanation on failure. */
#define CHECKF(cond, ...) do { \
	if (cond) check_pass++; \
	else { check_fail++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
	       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_MEM(a, alen, b, blen) CHECKF((alen) == (blen) && memcmp((a), (b), (blen)) == 0, \
	"got %.*s (%zu bytes)", (int)(alen), (const char *)(a), (size_t)(alen))

static int check_summary(const char *name)
{
	fprintf(stdout, "%s: %d passed, %d failed\n", name, check_pass, check_fail);
	return check_fail ? 1 : 0;
}
#endif
