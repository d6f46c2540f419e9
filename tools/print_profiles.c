/* print_profiles - prints the OpenCL build options of every kernel profile,
 * one line each, for tools/check-portability. */
#include "gpumat_internal.h"

#include <stdio.h>

int main(void)
{
    for (size_t i = 0; i < gpumat__profile_count(); ++i) {
        char options[512];
        gpumat__profile_build_options(gpumat__profile_at(i), options, sizeof options);
        printf("%s\t%s\n", gpumat__profile_at(i)->name, options);
    }
    return 0;
}
