/* zenn-admin user: add and list. */
#include "admin.h"

/* ============================================================================ users */

static const char SQL_USER_ADD[] = "INSERT INTO users (email) VALUES (?)";

int cmd_user_add(app *a, const args *g)
{
    const char *email = g->pos[0];
    if (!valid_email(email))
        return bad_usage(g, "'%s' is not a valid e-mail address", email);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[] = {ZG_STR(email)};
    if (query(a, SQL_USER_ADD, p, 1, NULL, NULL) != 0) {
        if (zg_db_errno(a->db) == 1062)
            return fail(g, "a user with e-mail '%s' already exists", email);
        return db_fail(a, g, "adding the user");
    }
    int64_t id = 0;
    if (query_i64(a, SQL_USER_ID, p, 1, 0, &id) != 0)
        return db_fail(a, g, "reading the new user");
    printf("added user %s (id %" PRId64 ")\n", email, id);
    return RC_OK;
}

static const char SQL_USER_LIST[] =
    "SELECT u.id, u.email, u.status, zg_plan_rank(u.id), u.balance, u.held,"
    " (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id AND k.status = 'active'), u.created_at"
    " FROM users u ORDER BY u.id";

int cmd_user_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_INT, "id", "ID", NULL},          {1, C_STR, "email", "EMAIL", NULL},
        {2, C_STR, "status", "STATUS", NULL},  {3, C_PLAN, "plan", "PLAN", NULL},
        {4, C_INT, "credits", "CREDITS", NULL}, {5, C_INT, "held", "HELD", NULL},
        {6, C_INT, "active_keys", "KEYS", NULL}, {7, C_TIME, "created_at", "CREATED", NULL},
    };
    if (!app_db(a, g))
        return RC_FAIL;
    rowset r;
    if (query(a, SQL_USER_LIST, NULL, 0, &r, NULL) != 0)
        return db_fail(a, g, "listing users");
    if (opt(g, "json"))
        j_print(rows_json(&r, cols, 8));
    else
        rows_table(&r, cols, 8, "");
    rs_free(&r);
    return RC_OK;
}
