/* Linked into the musl .node builds together with LLVM's libunwind.a (see lib.sh / build-all.sh).
 * Debian's libunwind.a was compiled against glibc with _FORTIFY_SOURCE, so it calls the glibc-only
 * name __fprintf_chk (for its debug logging). musl has no fortify names; this forwards it. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...) {
  (void)flag;
  va_list ap;
  va_start(ap, format);
  int r = vfprintf(stream, format, ap);
  va_end(ap);
  return r;
}
