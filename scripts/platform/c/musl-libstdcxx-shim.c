/* TEST EQUIPMENT ONLY, never shipped. Bun's musl builds need a musl-linked libstdc++.so.6,
 * which no Debian package provides. install-toolchains.sh links one with musl-gcc from Debian's
 * static libstdc++.a, forcing in the C++ symbols bun imports; this file supplies the few
 * glibc-only names that Debian's libstdc++.a / libgcc_eh.a reference and musl lacks. */
#define _GNU_SOURCE
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#ifdef __aarch64__
#include <sys/auxv.h>
#endif

char __libc_single_threaded = 0;

struct tls_dtor { void (*fn)(void *); void *obj; struct tls_dtor *next; };
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static void tls_run(void *p) {
  struct tls_dtor *d = p;
  while (d) { struct tls_dtor *n = d->next; d->fn(d->obj); free(d); d = n; }
}
static void tls_init(void) { pthread_key_create(&tls_key, tls_run); }
int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) {
  (void)dso;
  pthread_once(&tls_once, tls_init);
  struct tls_dtor *d = malloc(sizeof *d);
  if (!d) return -1;
  d->fn = fn; d->obj = obj; d->next = pthread_getspecific(tls_key);
  pthread_setspecific(tls_key, d);
  return 0;
}

/* libgcc's unwinder asks glibc for the object holding a PC; -1 makes it use dl_iterate_phdr. */
int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }

size_t __strftime_l(char *s, size_t max, const char *fmt, const struct tm *tm, locale_t loc) {
  return strftime_l(s, max, fmt, tm, loc);
}

uint32_t arc4random(void) {
  uint32_t v = 0;
  while (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {}
  return v;
}

#ifdef __aarch64__
unsigned long __getauxval(unsigned long type) { return getauxval(type); }
#endif
