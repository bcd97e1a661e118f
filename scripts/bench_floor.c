/* The floor for gomap's decode rate: a plain sequential read of the same bucket/group bytes.
 *
 *   bench_floor CORE RANGES   RANGES: binary file of (u64 file offset, u64 length) pairs
 *
 * Like gomap it maps the core file read-only in a fresh process, so the page faults of a first touch
 * are part of the cost; then it reads every 8-byte word of every range, in order, and sums them.
 * Prints "<seconds> <bytes> <checksum>". Built by scripts/bench.py with gcc -O2.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_floor CORE RANGES\n");
        return 2;
    }
    FILE *rf = fopen(argv[2], "rb");
    if (!rf) { perror(argv[2]); return 1; }
    fseek(rf, 0, SEEK_END);
    long rsz = ftell(rf);
    fseek(rf, 0, SEEK_SET);
    uint64_t *ranges = malloc(rsz > 0 ? rsz : 1);
    if (rsz > 0 && fread(ranges, 1, rsz, rf) != (size_t)rsz) { perror("read ranges"); return 1; }
    fclose(rf);
    size_t nr = rsz / 16;

    double t0 = now();
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror(argv[1]); return 1; }
    struct stat st;
    fstat(fd, &st);
    const uint8_t *map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }
    uint64_t sum = 0, bytes = 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t off = ranges[2 * i], len = ranges[2 * i + 1];
        if (off + len > (uint64_t)st.st_size) { fprintf(stderr, "range beyond the core\n"); return 1; }
        const uint8_t *p = map + off;
        uint64_t w;
        for (uint64_t j = 0; j + 8 <= len; j += 8) {
            memcpy(&w, p + j, 8);
            sum += w;
        }
        bytes += len;
    }
    double t1 = now();
    printf("%.6f %llu %llu\n", t1 - t0, (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}
