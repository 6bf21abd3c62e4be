/* Host-wide channel slots (zg_slots): the cap holds across processes, a process's own requests
 * never share a slot, a dead process's slots come back, a waiting higher plan in another process
 * keeps a lower plan out, and without the file the caller is told to count per process. */
#include "tap.h"
#include "zg_slots.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* A child that opens the same file, runs what `what` says, tells the parent over p, then waits to be
 * killed. */
static pid_t child(const char *path, int what, int pfd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    zg_slots_init(path);
    char r = 'x';
    if (what == 1) /* hold two of channel 7's three slots */
        r = (zg_slots_take(7, 3, 1) >= 0 && zg_slots_take(7, 3, 1) >= 0) ? 'y' : 'n';
    else if (what == 2) { /* an Enterprise request waits for channel 9 */
        zg_slots_waiting(9, 3, 1);
        r = 'y';
    }
    if (write(pfd, &r, 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

int main(void)
{
    char path[] = "/tmp/zg-slots-XXXXXX";
    int tfd = mkstemp(path);
    ok(tfd >= 0, "temporary file");
    close(tfd);

    is_int(zg_slots_take(7, 3, 1), -2, "before init: not shared");
    zg_slots_init(path);
    is_int(zg_slots_take(7, 0, 1), -2, "no cap: not shared");
    is_int(zg_slots_take(7, ZG_SLOTS_MAX_CAP + 1, 1), -2, "a cap over the maximum: not shared");

    int p[2];
    ok(pipe(p) == 0, "pipe");
    char r = 0;
    pid_t a = child(path, 1, p[1]);
    ok(read(p[0], &r, 1) == 1 && r == 'y', "another process took two slots of three");
    is_int(zg_slots_count(7, 3), 2, "the host counts them");
    int s = zg_slots_take(7, 3, 1);
    ok(s >= 0, "the third slot is free");
    is_int(zg_slots_take(7, 3, 1), -1, "a fourth request of the same process finds none");
    is_int(zg_slots_count(7, 3), 3, "three in flight on the host");
    zg_slots_give(7, s);
    int s2 = zg_slots_take(7, 3, 1);
    is_int(s2, s, "a slot given back is taken again");
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    is_int(zg_slots_count(7, 3), 1, "a killed process's slots are free");
    ok(zg_slots_take(7, 3, 1) >= 0 && zg_slots_take(7, 3, 1) >= 0, "and can be taken");
    is_int(zg_slots_take(7, 3, 1), -1, "the cap holds again");

    pid_t b = child(path, 2, p[1]);
    ok(read(p[0], &r, 1) == 1 && r == 'y', "an Enterprise request waits in another process");
    is_int(zg_slots_take(9, 5, 1), -1, "a Pro request leaves channel 9 to it");
    is_int(zg_slots_take(9, 5, 2), -1, "so does a Max request");
    ok(zg_slots_take(9, 5, 3) >= 0, "another Enterprise request is not held back");
    ok(zg_slots_take(8, 5, 1) >= 0, "other channels are not affected");
    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    ok(zg_slots_take(9, 5, 1) >= 0, "once it is gone, Pro takes a slot");

    zg_slots_waiting(10, 2, 1);
    is_int(zg_slots_take(10, 5, 1), -1, "a Max waiter of this process keeps Pro out");
    ok(zg_slots_take(10, 5, 2) >= 0, "but not Max");
    zg_slots_waiting(10, 2, -1);
    ok(zg_slots_take(10, 5, 1) >= 0, "after it stopped waiting, Pro gets in");
    ok(zg_slots_take(-3, 2, 1) >= 0, "a provider's default channel (negative id) is counted too");
    unlink(path);
    return tap_done();
}
