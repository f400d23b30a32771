/* wire.h - little-endian load/store helpers for the net layer's formats (private). */
#ifndef AMS_NET_WIRE_H
#define AMS_NET_WIRE_H

#include <stdint.h>
#include <string.h>

static inline void ams_wire_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ams_wire_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ams_wire_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ams_wire_get16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ams_wire_get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t ams_wire_get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline void ams_wire_putf64(uint8_t *p, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    ams_wire_put64(p, v);
}
static inline double ams_wire_getf64(const uint8_t *p) {
    uint64_t v = ams_wire_get64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

#endif
