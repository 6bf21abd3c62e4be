#ifndef ZG_LOG_H
#define ZG_LOG_H

enum { ZG_LOG_ERROR = 0, ZG_LOG_WARN = 1, ZG_LOG_INFO = 2, ZG_LOG_DEBUG = 3 };

/* Set the program name shown on each line and the most verbose level written. */
void zg_log_init(const char *prog, int level);
/* Parse "error|warn|info|debug"; returns -1 if unknown. */
int zg_log_level_parse(const char *s);
/* Write one line to stderr: time, program, pid, level, message. Never pass keys or prompt text. */
void zg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define zg_error(...) zg_log(ZG_LOG_ERROR, __VA_ARGS__)
#define zg_warn(...) zg_log(ZG_LOG_WARN, __VA_ARGS__)
#define zg_info(...) zg_log(ZG_LOG_INFO, __VA_ARGS__)
#define zg_debug(...) zg_log(ZG_LOG_DEBUG, __VA_ARGS__)

#endif
