// CRC-32C with the CPU's instructions: on x86-64 SSE 4.2's crc32 (8 bytes per instruction, one
// per cycle of throughput but three of latency, so three independent streams are folded
// together), on 64-bit ARM the CRC extension's crc32c. The Swift side (RaftWAL's CRC32C) keeps
// its slicing-by-8 tables for CPUs without them and checks both agree in its tests.

#include "crc32c_hardware.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)

#include <cpuid.h>

int flotilla_crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

#define CRC_U64(crc, value) ((uint32_t)__builtin_ia32_crc32di((crc), (value)))
#define CRC_U8(crc, value) __builtin_ia32_crc32qi((crc), (value))
#define CRC_TARGET __attribute__((target("sse4.2")))

#elif defined(__aarch64__)

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
int flotilla_crc32c_hardware_available(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
int flotilla_crc32c_hardware_available(void) { return 1; }  // Apple silicon always has it.
#endif

#define CRC_U64(crc, value) __builtin_arm_crc32cd((crc), (value))
#define CRC_U8(crc, value) __builtin_arm_crc32cb((crc), (value))
#define CRC_TARGET __attribute__((target("crc")))

#else

int flotilla_crc32c_hardware_available(void) { return 0; }
uint32_t flotilla_crc32c_hardware_update(uint32_t state, const void *bytes, size_t length) {
    (void)bytes;
    (void)length;
    return state;  // Never called: the Swift side checks availability first.
}

#endif

#if defined(__x86_64__) || defined(__aarch64__)

// Shifting a CRC register over `n` zero bytes is a linear map; these fold the three streams of
// one block together. shift_table[k][b] is the register of byte value b moved over the bytes
// of the streams after it, computed once from the polynomial.
enum { STREAM = 8 * 128 };  // bytes per stream in a block of three

static uint32_t shift_tables[2][4][256];  // [by 2·STREAM, by STREAM][byte position][byte value]
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

// The register `crc` moved over `n` zero bytes, one bit at a time (for building the tables only).
static uint32_t crc_zeros_slow(uint32_t crc, size_t n) {
    for (size_t i = 0; i < n * 8; i++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    return crc;
}

static void build_tables(void) {
    for (int which = 0; which < 2; which++) {
        size_t distance = which == 0 ? 2 * STREAM : STREAM;
        // The map is linear: shift the 32 single-bit registers, then combine them per byte value.
        uint32_t basis[32];
        for (int bit = 0; bit < 32; bit++) basis[bit] = crc_zeros_slow(1u << bit, distance);
        for (int position = 0; position < 4; position++) {
            for (uint32_t value = 0; value < 256; value++) {
                uint32_t shifted = 0;
                for (int bit = 0; bit < 8; bit++) {
                    if (value & (1u << bit)) shifted ^= basis[8 * position + bit];
                }
                shift_tables[which][position][value] = shifted;
            }
        }
    }
}

static inline uint32_t shift(int which, uint32_t crc) {
    return shift_tables[which][0][crc & 0xFF] ^ shift_tables[which][1][(crc >> 8) & 0xFF]
        ^ shift_tables[which][2][(crc >> 16) & 0xFF] ^ shift_tables[which][3][crc >> 24];
}

CRC_TARGET uint32_t flotilla_crc32c_hardware_update(uint32_t state, const void *bytes, size_t length) {
    const unsigned char *p = bytes;
    uint64_t crc = state;
    if (length >= 3 * STREAM) {
        pthread_once(&tables_once, build_tables);
        while (length >= 3 * STREAM) {
            uint64_t a = crc, b = 0, c = 0;
            for (size_t i = 0; i < STREAM; i += 8) {
                uint64_t x, y, z;
                memcpy(&x, p + i, 8);
                memcpy(&y, p + STREAM + i, 8);
                memcpy(&z, p + 2 * STREAM + i, 8);
                a = CRC_U64((uint32_t)a, x);
                b = CRC_U64((uint32_t)b, y);
                c = CRC_U64((uint32_t)c, z);
            }
            crc = shift(0, (uint32_t)a) ^ shift(1, (uint32_t)b) ^ (uint32_t)c;
            p += 3 * STREAM;
            length -= 3 * STREAM;
        }
    }
    while (length >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        crc = CRC_U64((uint32_t)crc, x);
        p += 8;
        length -= 8;
    }
    uint32_t result = (uint32_t)crc;
    while (length > 0) {
        result = CRC_U8(result, *p);
        p++;
        length--;
    }
    return result;
}

#endif
