/* zg_gate: at most a few of a process's worker threads compute at once.
 *
 * A process has a thread per request in flight, and nearly all of them wait (on the upstream, the
 * database, the client). The few that have work to do take one of `[server] cpu_slots` slots
 * (default: twice the CPUs of the machine) first, in arrival order, and let go of it whenever they wait.
 * So a thousand busy threads never crowd the web server's and the database's own threads off the
 * CPUs, and a request's work is not interleaved with every other's. */
#ifndef ZG_GATE_H
#define ZG_GATE_H

/* Size the gate (0: twice the online CPUs; negative: no gate). Call once, before threads run. */
void zg_gate_init(int slots);
/* Take a slot, waiting in line for one (nothing when this thread already holds one). */
void zg_gate_enter(void);
/* Give this thread's slot to the next in line (nothing when it holds none). */
void zg_gate_leave(void);
/* Around a wait: zg_gate_pause() gives the slot up and says whether one was held;
 * zg_gate_resume(held) takes one again if so. */
int zg_gate_pause(void);
void zg_gate_resume(int held);

#endif
