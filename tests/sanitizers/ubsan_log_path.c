/* Linked into every executable and shared library of a gcc address,undefined build (root
   CMakeLists.txt): makes UBSan honour log_path, so that a child process's UB report reaches the
   file its test reads (tests/sanitizers/child_reports.cc).

   gcc ships UBSan as its own runtime, libubsan.so, beside libasan.so. Both carry a copy of the
   sanitizers' common code, and libubsan's call to the exported __sanitizer_set_report_path binds
   to libasan's copy (libasan comes first), so UBSan's own report file stays stderr whatever
   UBSAN_OPTIONS says. This constructor hands libubsan's own copy the log_path of UBSAN_OPTIONS. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void imgstore_ubsan_log_path(void) {
  const char* options = getenv("UBSAN_OPTIONS");
  if (options == NULL) return;
  /* As the sanitizers parse it: the last log_path= wins; values end at ':', ' ' or ','. */
  const char* value = NULL;
  for (const char* p = strstr(options, "log_path="); p != NULL; p = strstr(p + 1, "log_path=")) {
    if (p == options || p[-1] == ':' || p[-1] == ' ' || p[-1] == ',') {
      value = p + strlen("log_path=");
    }
  }
  if (value == NULL) return;
  char path[4096];
  size_t n = strcspn(value, ": ,");
  if (n == 0 || n >= sizeof path) return;
  memcpy(path, value, n);
  path[n] = '\0';
  void* ubsan = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (ubsan == NULL) return;
  /* dlsym on libubsan's handle finds its own definition, not the one calls bind to. */
  void (*set_report_path)(const char*) =
      (void (*)(const char*))dlsym(ubsan, "__sanitizer_set_report_path");
  if (set_report_path != NULL) set_report_path(path);
  dlclose(ubsan);
}
