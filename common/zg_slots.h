/* zg_slots: a channel's concurrency cap counted for the whole host, not per process.
 *
 * Every program process of a host (all routes, lighttpd's or mod_fcgid's) opens the same file
 * (the spool path + ".slots") and holds one byte-range lock per request in flight on a capped
 * channel: slot k of channel id is byte id * ZG_SLOTS_REGION + k. The kernel drops the locks of a
 * process that dies, so a crash never leaks a slot. A request waiting in line for a channel holds a
 * shared lock on the channel's byte for its plan; a request of a lower plan leaves a free slot to
 * it (Enterprise before Max before Pro across processes; within a plan, roughly oldest first).
 * Uncapped channels never come here. */
#ifndef ZG_SLOTS_H
#define ZG_SLOTS_H

#define ZG_SLOTS_MAX_CAP 10000  /* the largest cap counted for the host (larger: per process) */

/* Open this process's handle on the slot file at path (the first call wins; later calls do
 * nothing). Without it (the file cannot be opened) zg_slots_take answers -2. Thread-safe. */
void zg_slots_init(const char *path);
/* Take a free slot of channel id (cap > 0) for a request of plan rank `plan`: the slot number;
 * -1 when cap requests are in flight on the host or a request of a higher plan waits for the
 * channel in another process; -2 when slots are not shared (no file, or cap over the maximum). */
int zg_slots_take(int id, int cap, int plan);
/* Give back a slot that zg_slots_take returned. */
void zg_slots_give(int id, int slot);
/* A request of plan starts (delta 1) or stops (-1) waiting for channel id. */
void zg_slots_waiting(int id, int plan, int delta);
/* Requests in flight on channel id on the host, up to cap (for tests and `channel list`). -1 without
 * the file. */
int zg_slots_count(int id, int cap);

#endif
