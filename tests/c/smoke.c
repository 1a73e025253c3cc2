/* C consumer smoke test: version, ABI, runtime info and the error convention. */
#include <stdio.h>
#include <string.h>

#include "brainsam.h"

static int failures = 0;
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                        \
    }                                                                    \
  } while (0)

int main(void) {
  CHECK(strcmp(brainsam_version(), BRAINSAM_VERSION) == 0);
  CHECK(brainsam_version_number() ==
        BRAINSAM_VERSION_MAJOR * 10000u + BRAINSAM_VERSION_MINOR * 100u + BRAINSAM_VERSION_PATCH);
  CHECK(brainsam_abi_version() == BRAINSAM_ABI_VERSION);

  /* Null pointer: a status and a message naming the argument, no crash. */
  brainsam_status status = brainsam_runtime_info(NULL);
  CHECK(status == BRAINSAM_STATUS_NULL_POINTER);
  CHECK(strstr(brainsam_last_error_message(), "info") != NULL);
  CHECK(strcmp(brainsam_status_name(status), "BRAINSAM_STATUS_NULL_POINTER") == 0);

  /* A struct_size from an older/wrong header is refused. */
  brainsam_runtime info;
  memset(&info, 0, sizeof info);
  info.struct_size = 4;
  CHECK(brainsam_runtime_info(&info) == BRAINSAM_STATUS_BUFFER_TOO_SMALL);
  CHECK(strstr(brainsam_last_error_message(), "struct_size") != NULL);

  info.struct_size = sizeof info;
  status = brainsam_runtime_info(&info);
  CHECK(status == BRAINSAM_STATUS_OK);
  CHECK(strcmp(brainsam_last_error_message(), "") == 0);
  CHECK(strncmp(info.libtorch_version, "2.11.0", 6) == 0);
  CHECK(info.cuda_available == 0 || info.cuda_available == 1);
  CHECK(info.cuda_device_count >= 0);
  CHECK(info.cpu_threads >= 1);

  printf("brainsam %s (ABI %u), libtorch %s, cuda %s (%d devices), %d cpu threads\n",
         brainsam_version(), brainsam_abi_version(), info.libtorch_version,
         info.cuda_available ? "yes" : "no", info.cuda_device_count, info.cpu_threads);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c smoke test: ok\n");
  return 0;
}
