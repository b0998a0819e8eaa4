#ifndef FLOTILLA_CRC32C_HARDWARE_H
#define FLOTILLA_CRC32C_HARDWARE_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has CRC-32C instructions (SSE 4.2 on x86-64, the CRC extension on 64-bit
/// ARM). Checked once; `flotilla_crc32c_hardware_update` must not be called when it is 0.
int flotilla_crc32c_hardware_available(void);

/// The raw (uncomplemented) CRC-32C register `state` continued over `length` bytes at `bytes`,
/// with the CPU's CRC instructions. Callers complement before and after, as the table-driven
/// algorithm does.
uint32_t flotilla_crc32c_hardware_update(uint32_t state, const void *bytes, size_t length);

#endif
