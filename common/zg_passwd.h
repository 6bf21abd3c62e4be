/* Customer passwords: yescrypt (crypt(3) from libxcrypt, the system's own password hash) of the
 * password's SHA-256, so any password up to ZG_PASSWD_MAX bytes fits crypt's input. */
#ifndef ZG_PASSWD_H
#define ZG_PASSWD_H
#include <stdbool.h>
#include <stddef.h>

#define ZG_PASSWD_MIN 10
#define ZG_PASSWD_MAX 1024
#define ZG_PASSWD_HASH_MAX 256 /* a stored hash fits here */

/* Why a password is refused (NULL when it is acceptable): length outside MIN..MAX bytes, a NUL byte,
 * or not UTF-8. */
const char *zg_passwd_weakness(const char *pw, size_t len);
/* Hash pw for storage into out[ZG_PASSWD_HASH_MAX] with a fresh salt. 0, or -1 (no memory, no
 * randomness). Takes some tens of milliseconds and about 16 MiB on purpose. */
int zg_passwd_hash(const char *pw, size_t len, char *out);
/* Does pw match the stored hash? A NULL or malformed stored hash never matches but costs the same
 * time as a real check (so an unknown account answers as slowly as a known one). */
bool zg_passwd_check(const char *pw, size_t len, const char *stored);

#endif
